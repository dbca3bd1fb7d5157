"""Reports: the ``segbench compare`` report folder and training-curve figures.

The only layer of segbench that imports matplotlib. Modules, one concern each: ``write`` (the report
folder), ``results`` (rows, Pareto front, results.json / results.csv), ``blocks`` (the report's sections
and prose), ``render`` (Markdown and HTML), ``figures`` (every matplotlib figure), ``grid`` (the PIL grid
of example masks), ``values`` (number formatting), ``masks`` (every evaluated image's masks, saved as
``compare`` goes), ``browser`` (report.html's image browser and per-image table), ``svgplot`` (the
interactive Pareto plot); ``assets/`` holds the page's CSS and JavaScript, inlined into report.html.
"""

from segbench.report.figures import plot_curves, read_metrics
from segbench.report.results import pareto_front
from segbench.report.write import display_name, write_report

__all__ = ["display_name", "pareto_front", "plot_curves", "read_metrics", "write_report"]
