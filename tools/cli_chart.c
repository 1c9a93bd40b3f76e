/*
 * cli_chart.c - the SVG recall/latency chart of `strata tune` (cli_chart.h).
 *
 * Owns the chart's geometry: a logarithmic x axis (latencies across an ef
 * sweep span one to three decades), a linear y axis that starts just below
 * the lowest recall and ends at 1, ticks at 1-2-5 steps, labels placed where
 * they do not cover each other. It must never emit text unescaped: series
 * names come from file paths.
 */
#include "cli_chart.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define W 960.0
#define H 620.0
#define TOP 78.0
#define BOTTOM 72.0
#define LEFT 86.0
#define RIGHT_ONE 48.0   /* one curve: no legend column */
#define RIGHT_MANY 270.0 /* legend column */
#define LABEL_CHAR_W 6.6 /* width of one character of the 11px point labels */
#define LABELS_MAX 4096

static const char *const palette[] = {
	"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
	"#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22",
};

static void xml_text(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		default:
			/* Control characters are not allowed in XML 1.0 text. */
			if ((unsigned char)*s >= 0x20 || *s == '\t')
				fputc(*s, f);
		}
	}
}

struct frame {
	double x0, x1, y0, y1;     /* plot area in pixels */
	double lx_lo, lx_hi;       /* log10 x range */
	double y_lo, y_hi;         /* y range */
};

static double px_x(const struct frame *fr, double x)
{
	return fr->x0 + (log10(x) - fr->lx_lo) / (fr->lx_hi - fr->lx_lo) * (fr->x1 - fr->x0);
}

static double px_y(const struct frame *fr, double y)
{
	return fr->y1 - (y - fr->y_lo) / (fr->y_hi - fr->y_lo) * (fr->y1 - fr->y0);
}

static bool usable(const struct cli_chart_point *p)
{
	return isfinite(p->x) && p->x > 0 && isfinite(p->y);
}

/* A tick value as a short label: 5, 20, 150, 1.5k, 20k. */
static void tick_text(double v, char *buf, size_t len)
{
	if (v >= 10000)
		snprintf(buf, len, "%gk", v / 1000);
	else
		snprintf(buf, len, "%g", v);
}

struct box {
	double x0, y0, x1, y1;
};

static bool overlaps(const struct box *a, const struct box *b)
{
	return a->x0 < b->x1 && b->x0 < a->x1 && a->y0 < b->y1 && b->y0 < a->y1;
}

static void axes(FILE *f, const struct frame *fr, const struct cli_chart *c)
{
	/* x: a gridline at every 1..9 x 10^d, a labelled tick at 1-2-5 (or more when the span is short). */
	double span = fr->lx_hi - fr->lx_lo;
	static const int major_wide[] = {1, 2, 5};
	static const int major_narrow[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
	const int *major = span > 1.2 ? major_wide : major_narrow;
	size_t nmajor = span > 1.2 ? 3 : 9;
	for (int d = (int)floor(fr->lx_lo); d <= (int)ceil(fr->lx_hi); d++) {
		for (int m = 1; m <= 9; m++) {
			double v = m * pow(10.0, d);
			double lv = log10(v);
			if (lv < fr->lx_lo || lv > fr->lx_hi)
				continue;
			bool is_major = false;
			for (size_t i = 0; i < nmajor; i++)
				is_major |= major[i] == m;
			double x = px_x(fr, v);
			fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
			           "stroke-width=\"1\"/>\n", x, fr->y0, x, fr->y1,
			        is_major ? "#d9d9d9" : "#f0f0f0");
			if (!is_major)
				continue;
			char t[32];
			tick_text(v, t, sizeof t);
			fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n",
			        x, fr->y1, x, fr->y1 + 6);
			fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\">%s</text>\n",
			        x, fr->y1 + 21, t);
		}
	}
	/* y: ticks every `step`, chosen from the span. */
	double yspan = 1.0 - fr->y_lo;
	double step = yspan > 0.5 ? 0.1 : yspan > 0.2 ? 0.05 : yspan > 0.08 ? 0.02 : 0.01;
	for (int i = 0;; i++) {
		double v = ceil(fr->y_lo / step - 1e-9) * step + i * step;
		if (v > fr->y_hi + 1e-9 || v > 1.0 + 1e-9)
			break;
		double y = px_y(fr, v);
		fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#d9d9d9\"/>\n",
		        fr->x0, y, fr->x1, y);
		fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n",
		        fr->x0 - 6, y, fr->x0, y);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"12\">%.*f</text>\n",
		        fr->x0 - 10, y + 4, step < 0.1 - 1e-9 ? 2 : 1, v);
	}
	fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
	           "stroke=\"#333\"/>\n", fr->x0, fr->y0, fr->x1 - fr->x0, fr->y1 - fr->y0);
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\">",
	        (fr->x0 + fr->x1) / 2, fr->y1 + 46);
	xml_text(f, c->x_label);
	fputs("</text>\n", f);
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\" "
	           "transform=\"rotate(-90 %.1f %.1f)\">", 24.0, (fr->y0 + fr->y1) / 2, 24.0,
	        (fr->y0 + fr->y1) / 2);
	xml_text(f, c->y_label);
	fputs("</text>\n", f);
}

/* Every drawn point, as a small box labels must not cover. */
static size_t point_boxes(const struct frame *fr, const struct cli_chart_series *series,
                          size_t nseries, struct box *out, size_t max)
{
	size_t n = 0;
	for (size_t s = 0; s < nseries; s++)
		for (size_t i = 0; i < series[s].n && n < max; i++)
			if (usable(&series[s].pts[i])) {
				double x = px_x(fr, series[s].pts[i].x), y = px_y(fr, series[s].pts[i].y);
				out[n++] = (struct box){x - 4, y - 4, x + 4, y + 4};
			}
	return n;
}

/*
 * Label each point beside it, at the first of eight places that stays in the
 * plot and covers no other label and no point; a label with no such place
 * is left out (its point keeps the value in its <title>). Returns how many
 * were left out.
 */
static size_t place_labels(FILE *f, const struct frame *fr, const struct cli_chart_series *series,
                           size_t nseries)
{
	static const double dx[] = {6, 6, -6, -6, 8, -8, 0, 0};
	static const double dy[] = {-6, 15, -6, 15, 4, 4, -9, 18};
	static const char *const anchor[] = {"start", "start", "end", "end",
	                                     "start", "end", "middle", "middle"};
	size_t nplaced = 0, hidden = 0, own = 0;
	struct box *placed = malloc(LABELS_MAX * sizeof *placed);
	struct box *pts = malloc(LABELS_MAX * sizeof *pts);
	if (!placed || !pts) {
		free(placed);
		free(pts);
		return 0; /* no room to place labels: the points keep their <title> */
	}
	size_t npts = point_boxes(fr, series, nseries, pts, LABELS_MAX);
	for (size_t s = 0; s < nseries; s++) {
		const char *col = palette[s % (sizeof palette / sizeof palette[0])];
		for (size_t i = 0; i < series[s].n; i++) {
			const struct cli_chart_point *p = &series[s].pts[i];
			if (!usable(p))
				continue;
			size_t me = own++;
			if (!p->label[0])
				continue;
			double x = px_x(fr, p->x), y = px_y(fr, p->y);
			double w = LABEL_CHAR_W * (double)strlen(p->label) + 2, h = 11;
			int pick = -1;
			struct box b = {0};
			for (int t = 0; t < 8 && pick < 0; t++) {
				double bx = !strcmp(anchor[t], "start") ? x + dx[t]
				            : !strcmp(anchor[t], "end") ? x + dx[t] - w : x - w / 2;
				b = (struct box){bx, y + dy[t] - h + 2, bx + w, y + dy[t] + 2};
				bool clear = b.x0 >= fr->x0 && b.x1 <= fr->x1 && b.y0 >= fr->y0 && b.y1 <= fr->y1;
				for (size_t k = 0; clear && k < nplaced; k++)
					clear = !overlaps(&b, &placed[k]);
				for (size_t k = 0; clear && k < npts; k++)
					clear = k == me || !overlaps(&b, &pts[k]);
				if (clear)
					pick = t;
			}
			if (pick < 0) {
				hidden++;
				continue;
			}
			if (nplaced < LABELS_MAX)
				placed[nplaced++] = b;
			/* A white halo keeps the label readable over grid lines and curves. */
			fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"%s\" "
			           "stroke=\"white\" stroke-width=\"3\" paint-order=\"stroke\" "
			           "text-anchor=\"%s\">", x + dx[pick], y + dy[pick], col, anchor[pick]);
			xml_text(f, p->label);
			fputs("</text>\n", f);
		}
	}
	free(placed);
	free(pts);
	return hidden;
}

int cli_chart_svg(FILE *f, const struct cli_chart *c, const struct cli_chart_series *series,
                  size_t nseries)
{
	double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY;
	size_t npts = 0;
	for (size_t s = 0; s < nseries; s++)
		for (size_t i = 0; i < series[s].n; i++) {
			const struct cli_chart_point *p = &series[s].pts[i];
			if (!usable(p))
				continue;
			xmin = fmin(xmin, p->x);
			xmax = fmax(xmax, p->x);
			ymin = fmin(ymin, p->y);
			npts++;
		}
	if (npts == 0)
		return -1;
	if (isfinite(c->target_y))
		ymin = fmin(ymin, c->target_y);

	struct frame fr = {.x0 = LEFT, .y0 = TOP, .y1 = H - BOTTOM};
	fr.x1 = W - (nseries > 1 ? RIGHT_MANY : RIGHT_ONE);
	fr.lx_lo = log10(xmin);
	fr.lx_hi = log10(xmax);
	double pad = (fr.lx_hi - fr.lx_lo) * 0.06;
	if (pad < 0.05)
		pad = 0.05;
	fr.lx_lo -= pad;
	fr.lx_hi += pad;
	double yspan = 1.0 - ymin;
	double step = yspan > 0.5 ? 0.1 : yspan > 0.2 ? 0.05 : yspan > 0.08 ? 0.02 : 0.01;
	fr.y_lo = floor((ymin - step * 0.3) / step) * step;
	if (fr.y_lo < 0)
		fr.y_lo = 0;
	fr.y_hi = 1.0 + step * 0.3; /* headroom: points at recall 1 sit inside the frame */

	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%.0f\" "
	           "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" font-family=\"DejaVu Sans, Helvetica, "
	           "Arial, sans-serif\">\n", W, H, W, H);
	fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", W, H);
	fprintf(f, "<text x=\"%.1f\" y=\"30\" font-size=\"17\" font-weight=\"bold\">", LEFT);
	xml_text(f, c->title);
	fputs("</text>\n", f);
	if (c->subtitle) {
		fprintf(f, "<text x=\"%.1f\" y=\"52\" font-size=\"12\" fill=\"#555\">", LEFT);
		xml_text(f, c->subtitle);
		fputs("</text>\n", f);
	}
	axes(f, &fr, c);
	if (isfinite(c->target_y) && c->target_y >= fr.y_lo && c->target_y <= fr.y_hi) {
		double y = px_y(&fr, c->target_y);
		fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#c00\" "
		           "stroke-width=\"1.2\" stroke-dasharray=\"6 4\"/>\n", fr.x0, y, fr.x1, y);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"12\" "
		           "fill=\"#c00\">", fr.x1 - 6, y + 15);
		xml_text(f, c->target_label);
		fputs("</text>\n", f);
	}

	/* Curves and points first, labels last so that no line is drawn over a label. */
	for (size_t s = 0; s < nseries; s++) {
		const char *col = palette[s % (sizeof palette / sizeof palette[0])];
		fprintf(f, "<g class=\"series\" stroke=\"%s\" fill=\"%s\">\n", col, col);
		fputs("<polyline fill=\"none\" stroke-width=\"2\" points=\"", f);
		for (size_t i = 0; i < series[s].n; i++)
			if (usable(&series[s].pts[i]))
				fprintf(f, "%.1f,%.1f ", px_x(&fr, series[s].pts[i].x),
				        px_y(&fr, series[s].pts[i].y));
		fputs("\"/>\n", f);
		for (size_t i = 0; i < series[s].n; i++) {
			const struct cli_chart_point *p = &series[s].pts[i];
			if (!usable(p))
				continue;
			/* The exact values on hover, in a browser. */
			fprintf(f, "<circle class=\"pt\" cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\"><title>",
			        px_x(&fr, p->x), px_y(&fr, p->y));
			if (nseries > 1) {
				xml_text(f, series[s].name);
				fputs(": ", f);
			}
			if (c->point_label) {
				xml_text(f, c->point_label);
				fputc(' ', f);
			}
			xml_text(f, p->label);
			fprintf(f, ", y %.4f, x %.4g</title></circle>\n", p->y, p->x);
		}
		fputs("</g>\n", f);
	}
	size_t hidden = place_labels(f, &fr, series, nseries);
	/* Legend: one row per curve (several curves), and what the point labels are. */
	double lx = fr.x1 + 18, ly = fr.y0 + 8;
	if (nseries > 1) {
		for (size_t s = 0; s < nseries; s++) {
			const char *col = palette[s % (sizeof palette / sizeof palette[0])];
			double y = ly + 22.0 * (double)s;
			fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
			           "stroke-width=\"2\"/>\n", lx, y, lx + 22, y, col);
			fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n", lx + 11, y,
			        col);
			fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\">", lx + 30, y + 4);
			xml_text(f, series[s].name);
			fputs("</text>\n", f);
		}
		ly += 22.0 * (double)nseries + 10;
	} else {
		lx = fr.x1 - 8;
		ly = fr.y1 - (hidden ? 40 : 12);
	}
	if (c->point_label) {
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#555\"%s>point labels: ",
		        lx, ly + 4, nseries > 1 ? "" : " text-anchor=\"end\"");
		xml_text(f, c->point_label);
		fputs("</text>\n", f);
		if (hidden) {
			fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#555\"%s>(%zu "
			           "hidden where they would overlap;</text>\n", lx, ly + 18,
			        nseries > 1 ? "" : " text-anchor=\"end\"", hidden);
			fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#555\"%s>hover a "
			           "point for its values)</text>\n", lx, ly + 32,
			        nseries > 1 ? "" : " text-anchor=\"end\"");
		}
	}
	fputs("</svg>\n", f);
	return ferror(f) ? -1 : 0;
}
