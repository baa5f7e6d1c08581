"""Theory beside every measurement, computed from the activation alone (no training): mean field (mean_field.py:
Poole et al. 2016, Schoenholz et al. 2017) and of residual and normalized blocks (blocks.py: Yang & Schoenholz
2017, Yang et al. 2019), the correlation map and its depth scale (correlation.py), and the
Jacobian's singular-value spectrum: its moments (spectrum.py) and its free-probability density (spectrum_density.py;
Pennington et al. 2017, 2018). Imports nothing of the lab but its rules (lab/stats.py).
"""
