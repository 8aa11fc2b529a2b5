#!/bin/sh
# pyverbs.sh DEVICE [NETDEV]: rdma-core's own tests (pyverbs), as the distribution ships them
# (/usr/share/doc/rdma-core/tests, some files compressed), run on DEVICE: every module that is
# not a vendor's (mlx5, efa), as TAP, one line per module with its passes and skips; a failure
# or an error fails the module's line and is shown with its traceback; each reason for a skip
# is listed with how many tests it skipped.
# A DEVICE not there yet is made, by loading pfnic.ko on NETDEV ("nic": the guest's NIC of
# run.sh --nic, which has a PCI device under it, where pyverbs' rdma_cm tests look for the
# device's netdev and address). 2 MiB huge pages are reserved for the tests that use them.
set -eu
dev=${1:?usage: pyverbs.sh DEVICE [NETDEV]}
on=${2:-}
shipped=/usr/share/doc/rdma-core/tests
[ -f "$shipped/run_tests.py" ] || { echo "Bail out! no pyverbs tests at $shipped (python3-pyverbs)"; exit 1; }
if ! rdma link show "$dev/1" > /dev/null 2>&1; then
	[ -n "$on" ] || { echo "Bail out! no device $dev"; exit 1; }
	if [ "$on" = nic ]; then
		test/vm/guest net && on=$(test/vm/guest nic-name) || { echo "Bail out! no NIC"; exit 1; }
	fi
	modprobe rdma_ucm
	test/vm/guest pfnic "netdev=$on" || { echo "Bail out! pfnic.ko does not load on $on"; exit 1; }
fi
hugepages=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
[ "$(cat "$hugepages")" -gt 0 ] || echo 64 > "$hugepages"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$shipped" "$work/tests"
find "$work/tests" -name '*.gz' -exec gunzip -f {} +

exec python3 - "$work" "$dev" <<'EOF'
import collections
import os
import sys
import traceback
import unittest

work, dev = sys.argv[1], sys.argv[2]
# the tests import their helpers both as a package (tests.*) and by bare name
sys.path[:0] = [os.path.join(work, 'tests'), work]
sys.argv = [sys.argv[0], '--dev', dev]
from args_parser import parser  # noqa: E402
parser.parse_args()
import tests  # noqa: E402

def vendor(name):
    return 'mlx5' in name or 'efa' in name

class Record(unittest.TestResult):
    def __init__(self):
        super().__init__()
        self.by_module = collections.defaultdict(lambda: collections.defaultdict(list))

    def _module(self, test):
        return test.id().split('.')[1] if test.id().startswith('tests.') else test.id()

    def addSuccess(self, test):
        self.by_module[self._module(test)]['pass'].append(test.id())

    def addSkip(self, test, reason):
        self.by_module[self._module(test)]['skip'].append((test.id(), reason))

    def addFailure(self, test, err):
        self.by_module[self._module(test)]['fail'].append((test.id(), self._exc_info_to_string(err, test)))

    def addError(self, test, err):
        self.by_module[self._module(test)]['error'].append((test.id(), self._exc_info_to_string(err, test)))

    def addExpectedFailure(self, test, err):
        self.addSuccess(test)

    def addUnexpectedSuccess(self, test):
        self.by_module[self._module(test)]['fail'].append((test.id(), 'unexpected success'))

loader = unittest.TestLoader()
modules = [m for m in tests.__test_modules__ if not vendor(m.__name__)]
record = Record()
print('TAP version 13')
print(f'1..{len(modules)}')
bad = 0
for n, m in enumerate(modules, 1):
    name = m.__name__.split('.')[-1]
    loader.loadTestsFromModule(m).run(record)
    r = record.by_module.get(name, {})
    npass, nskip = len(r.get('pass', [])), len(r.get('skip', []))
    failed = r.get('fail', []) + r.get('error', [])
    line = f'pyverbs {name} on {dev}: {npass} passed, {nskip} skipped'
    if failed:
        bad += 1
        print(f'not ok {n} - {line}, {len(r.get("fail", []))} failed, {len(r.get("error", []))} errors')
        for tid, text in failed:
            print(f'# {tid}:')
            for l in text.rstrip().splitlines()[-12:]:
                print(f'#   {l}')
    else:
        print(f'ok {n} - {line}')
    reasons = collections.Counter(reason for _, reason in r.get('skip', []))
    for reason, count in reasons.most_common():
        print(f'# skipped {count}: {reason}')
    sys.stdout.flush()
sys.exit(1 if bad else 0)
EOF
