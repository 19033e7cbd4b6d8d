"""Training and evaluation scripts for dkn_ros (not part of the installed package).

``training/`` imports ``dkn_ros``; the package never imports ``training``.
"""
