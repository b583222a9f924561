#!/usr/bin/env python3
"""Counts test results of one or more meson build directories.

A gtest binary counts its individual cases (from the XML report meson asks it to write);
any other meson test counts as one. A meson test that failed, crashed or timed out counts at
least one failure even when its report is missing or incomplete. Under CI=true a skipped
case counts as a failure: a test that cannot run must not pass silently.

Prints one line per build and, last, `N passed, N failed`. Exit status 1 if anything failed.
"""
import json
import os
import sys
import xml.etree.ElementTree as ElementTree

in_ci = os.environ.get("CI") == "true"


def gtest_cases(path):
    """(passed, failed, skipped, failed_names) from a gtest XML report, or None."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    passed = failed = skipped = 0
    failed_names = []
    for case in root.iter("testcase"):
        name = f"{case.get('classname')}.{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
            failed_names.append(name)
        elif case.find("skipped") is not None or case.get("result") == "skipped":
            skipped += 1
            if in_ci:
                failed_names.append(name + " (skipped under CI)")
        else:
            passed += 1
    return passed, failed, skipped, failed_names


def count_build(build_dir):
    log = os.path.join(build_dir, "meson-logs", "testlog.json")
    passed = failed = skipped = 0
    problems = []
    if not os.path.exists(log):
        return 0, 1, 0, [f"{build_dir}: no test log (the build or test run did not happen)"]
    with open(log) as lines:
        for line in lines:
            test = json.loads(line)
            name, result = test["name"], test["result"]
            ok = result in ("OK", "EXPECTEDFAIL")
            report = gtest_cases(os.path.join(build_dir, name + ".xml"))
            if report is None or result == "SKIP":
                if result == "SKIP":
                    skipped += 1
                    if in_ci:
                        problems.append(f"{name} (skipped under CI)")
                elif ok:
                    passed += 1
                else:
                    failed += 1
                    problems.append(f"{name}: {result}")
                continue
            case_passed, case_failed, case_skipped, names = report
            passed += case_passed
            skipped += case_skipped
            failed += case_failed
            problems += [f"{name}: {n}" for n in names]
            if not ok and case_failed == 0:
                failed += 1  # crashed or timed out outside any case
                problems.append(f"{name}: {result}")
    if in_ci:
        failed += skipped
        skipped = 0
    return passed, failed, skipped, problems


def main():
    total_passed = total_failed = total_skipped = 0
    for build_dir in sys.argv[1:]:
        passed, failed, skipped, problems = count_build(build_dir)
        print(f"{build_dir}: {passed} passed, {failed} failed, {skipped} skipped")
        for problem in problems:
            print(f"  FAILED {problem}")
        total_passed += passed
        total_failed += failed
        total_skipped += skipped
    extra = f", {total_skipped} skipped" if total_skipped else ""
    print(f"{total_passed} passed, {total_failed} failed{extra}")
    return 1 if total_failed else 0


if __name__ == "__main__":
    sys.exit(main())
