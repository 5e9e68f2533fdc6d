"""Runs the integration tests (real clients against the built binary) and prints
"N passed, N failed".  Usage: run.py PATH/TO/pillarbox [unittest name filters...]"""
import os
import sys
import unittest

here = os.path.dirname(os.path.abspath(__file__))
if len(sys.argv) < 2:
    sys.exit("usage: run.py PATH/TO/pillarbox [TEST...]")
os.environ["PILLARBOX_BIN"] = os.path.abspath(sys.argv[1])
sys.path.insert(0, here)

loader = unittest.TestLoader()
if len(sys.argv) > 2:
    suite = loader.loadTestsFromNames(sys.argv[2:])
else:
    suite = loader.discover(here, pattern="test_*.py", top_level_dir=here)
result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
# A test method with failing subtests is one failed test, however many of its subtests failed.
failed_tests = {id(t.test_case) if hasattr(t, "test_case") else id(t) for t, _ in result.failures + result.errors}
failed_tests |= {id(t) for t in result.unexpectedSuccesses}
failed = len(failed_tests)
skipped = len({id(t) for t, _ in result.skipped} - failed_tests)
passed = max(result.testsRun - failed - skipped, 0)
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed or result.testsRun == 0 else 0)
