#!/usr/bin/env bash
# segloss-gradcheck's self-test (ctest segloss_gradcheck_self_test): with element 0 of every
# analytic gradient changed by 1e-3 relative (the hidden --self-test-perturb), every entry must
# fail its gradient check and nothing else, the tally must count them all, and the exit status
# must be 1. An exit status alone would also pass a tool that failed for another reason (an
# entry that threw, a float or composed mismatch) or skipped entries.
set -u
tool=$1
out=$("$tool" soft_dice cross_entropy --self-test-perturb 1e-3)
rc=$?
echo "$out"
fail() { echo "gradcheck self-test: $*"; exit 1; }
[ "$rc" -eq 1 ] || fail "exit status $rc, expected 1"
rows=$(echo "$out" | sed '1d;$d')  # the header and the tally are the first and last lines
n=$(echo "$rows" | grep -c .)
want=$("$tool" soft_dice cross_entropy --list | sed 1d | grep -c .)  # the entries selected
[ "$want" -ge 2 ] || fail "--list gives $want entries for soft_dice and cross_entropy"
[ "$n" -eq "$want" ] || fail "$n rows, expected one per entry ($want)"
gradient=$(echo "$rows" | grep ' FAIL gradient ' | grep -vc ' FAIL gradient \(composed\|float\)')
[ "$gradient" -eq "$n" ] || fail "$gradient of $n entries failed on the gradient alone"
echo "$out" | tail -n 1 | grep -qx "$n checked, $n failed" || fail "the tally is not '$n checked, $n failed'"
echo "gradcheck self-test: all $n perturbed gradients were caught"
