"""Run one test module of tools/python/tests under unittest (as `meson test` does).

    /usr/bin/python3 tools/python/tests/run.py test_native [unittest args...]

Exit status: 0 when every test passed (skips allowed), 1 on any failure, 77
(meson's "skipped") when numpy is missing: apt-get install python3-numpy.
"""
import importlib
import os
import sys
import unittest

try:
    import numpy  # noqa: F401
except ImportError:
    print("numpy is missing (apt-get install python3-numpy): skipped")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
module = importlib.import_module(sys.argv[1])
if len(sys.argv) > 2:  # run.py test_native SearchTest SearchTest.test_filters ...
    suite = unittest.defaultTestLoader.loadTestsFromNames(sys.argv[2:], module)
else:
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
result = unittest.TextTestRunner(verbosity=2).run(suite)
sys.exit(0 if result.wasSuccessful() else 1)
