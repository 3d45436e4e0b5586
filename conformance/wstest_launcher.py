# Runs Autobahn|Testsuite's `wstest` from a `pip install --target DIR` install.
#
#   python wstest_launcher.py DIR -m fuzzingclient -s spec.json
#
# `pip install --target` does not process `.pth` files (autobahn's dependencies ship a
# zope namespace-package one), so DIR is added with site.addsitedir, which does.
import site
import sys

if len(sys.argv) < 2:
    sys.stderr.write("usage: wstest_launcher.py SITE_DIR [wstest arguments...]\n")
    sys.exit(2)

site.addsitedir(sys.argv[1])
sys.argv = ["wstest"] + sys.argv[2:]

from autobahntestsuite.wstest import run  # noqa: E402

sys.exit(run())
