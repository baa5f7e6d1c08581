"""What a person sees: one number format (format.py), one plot style (plots.py), a run's figures (run_figures.py), its
terminal report (report.py) and report.html (html.py), and runs side by side (compare.py). Reads run directories
through common/files.py; imports nothing of the run's lifecycle (run/)."""
