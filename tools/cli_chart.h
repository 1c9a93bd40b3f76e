/*
 * cli_chart.h - a small SVG line chart for `strata tune`: recall (y) against
 * latency (x, logarithmic), one curve per series, each point labelled, axes
 * with units and ticks, a dashed target line, a legend when there is more
 * than one curve. The output is a standalone SVG 1.1 document that browsers,
 * rsvg-convert and XML parsers read.
 *
 * Points are drawn as <circle class="pt"> elements, one per point (with the
 * exact values in a <title>, shown on hover), so tests and scripts can count
 * them. Labels that would cover another label or point are left out, and
 * the chart says how many.
 */
#ifndef STRATA_CLI_CHART_H
#define STRATA_CLI_CHART_H

#include <math.h>
#include <stddef.h>
#include <stdio.h>

struct cli_chart_point {
	double x;        /* > 0 (log scale); points with x <= 0 or non-finite are left out */
	double y;
	char label[24];  /* drawn beside the point, e.g. "64" for ef 64 */
};

struct cli_chart_series {
	char name[160];  /* legend text */
	const struct cli_chart_point *pts;
	size_t n;
};

struct cli_chart {
	const char *title;
	const char *subtitle;    /* may be NULL */
	const char *x_label;     /* with its unit */
	const char *y_label;
	double target_y;         /* NAN: no target line */
	const char *target_label;
	const char *point_label; /* what point labels are, for the note under the legend ("ef") */
};

/*
 * Write the chart to `f`. Returns 0, or -1 if writing failed (errno from
 * stdio) or there is no point to draw.
 */
int cli_chart_svg(FILE *f, const struct cli_chart *c, const struct cli_chart_series *series,
                  size_t nseries);

#endif /* STRATA_CLI_CHART_H */
