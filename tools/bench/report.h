// report.h - tables for strata-bench: one model, rendered as aligned text,
// as markdown (for README.md) or as JSON. Header-only; used by bench.cc.
#ifndef STRATA_BENCH_REPORT_H
#define STRATA_BENCH_REPORT_H

#include <cstdarg>
#include <cstdio>
#include <string>
#include <vector>

namespace bench {

struct Table {
	std::string title;
	std::vector<std::string> head;
	std::vector<std::vector<std::string>> rows;
	std::vector<std::string> notes; // printed under the table
	std::vector<bool> right;        // per column: right-aligned (numbers)
};

inline std::string fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
inline std::string fmt(const char *f, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, f);
	vsnprintf(buf, sizeof buf, f, ap);
	va_end(ap);
	return buf;
}

inline void render_text(FILE *out, const Table &t)
{
	std::vector<size_t> w(t.head.size(), 0);
	for (size_t c = 0; c < t.head.size(); c++)
		w[c] = t.head[c].size();
	for (const auto &r : t.rows)
		for (size_t c = 0; c < r.size() && c < w.size(); c++)
			if (r[c].size() > w[c])
				w[c] = r[c].size();
	if (!t.title.empty())
		fprintf(out, "%s\n", t.title.c_str());
	auto line = [&](const std::vector<std::string> &r) {
		fputs("  ", out);
		for (size_t c = 0; c < w.size(); c++) {
			const std::string &s = c < r.size() ? r[c] : std::string();
			bool right = c < t.right.size() && t.right[c];
			fprintf(out, right ? "%*s" : "%-*s", (int)w[c], s.c_str());
			fputs(c + 1 < w.size() ? "  " : "\n", out);
		}
	};
	line(t.head);
	std::vector<std::string> rule;
	for (size_t c = 0; c < w.size(); c++)
		rule.push_back(std::string(w[c], '-'));
	line(rule);
	for (const auto &r : t.rows)
		line(r);
	for (const auto &n : t.notes)
		fprintf(out, "  %s\n", n.c_str());
	fputs("\n", out);
}

inline void render_markdown(FILE *out, const Table &t)
{
	if (!t.title.empty())
		fprintf(out, "**%s**\n\n", t.title.c_str());
	fputs("|", out);
	for (const auto &h : t.head)
		fprintf(out, " %s |", h.c_str());
	fputs("\n|", out);
	for (size_t c = 0; c < t.head.size(); c++)
		fputs(c < t.right.size() && t.right[c] ? "---:|" : "---|", out);
	fputs("\n", out);
	for (const auto &r : t.rows) {
		fputs("|", out);
		for (const auto &s : r)
			fprintf(out, " %s |", s.c_str());
		fputs("\n", out);
	}
	fputs("\n", out);
	for (const auto &n : t.notes)
		fprintf(out, "%s\n", n.c_str());
	if (!t.notes.empty())
		fputs("\n", out);
}

// ---- a minimal JSON writer ------------------------------------------------

inline std::string json_str(const std::string &s)
{
	std::string o = "\"";
	for (char ch : s) {
		unsigned char c = (unsigned char)ch;
		if (c == '"' || c == '\\') {
			o += '\\';
			o += ch;
		} else if (c < 0x20) {
			o += fmt("\\u%04x", c);
		} else {
			o += ch;
		}
	}
	return o + "\"";
}

// A number, or null for "not measured / not reached" (negative or non-finite).
inline std::string json_num(double v)
{
	if (!(v >= 0) || v > 1e300)
		return "null";
	return fmt("%.6g", v);
}

// "--json=FILE" -> name "--json", value "FILE"; "--json" alone -> no value (it is the next argument).
struct Opt {
	std::string name, value;
	bool has_value = false;
};

inline Opt split_opt(const char *arg)
{
	Opt o;
	o.name = arg;
	size_t eq = o.name.find('=');
	if (o.name.rfind("--", 0) == 0 && eq != std::string::npos) {
		o.value = o.name.substr(eq + 1);
		o.name.resize(eq);
		o.has_value = true;
	}
	return o;
}

// "1,3" -> bits 0 and 2. False if the list names anything but parts 1..last.
inline bool parse_parts(const char *list, unsigned last, unsigned &mask)
{
	mask = 0;
	for (const char *p = list; *p; p++) {
		if (*p >= '1' && *p < (char)('1' + last))
			mask |= 1u << (*p - '1');
		else if (*p != ',')
			return false;
	}
	return mask != 0;
}

} // namespace bench

#endif // STRATA_BENCH_REPORT_H
