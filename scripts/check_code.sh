#!/usr/bin/env bash
# Static checks, configured in pyproject.toml: ruff (lint) and mypy, on the paths given or on all of src/medglip.
#
#   scripts/check_code.sh                                   # everything in src/medglip
#   scripts/check_code.sh src/medglip/dataset src/medglip/io/nifti.py tests/test_io.py
#   PYTHON=/work/main/.venv/bin/python scripts/check_code.sh src/medglip/sources
#   FORMAT=1 scripts/check_code.sh                          # also `ruff format --check` (reports, never rewrites)
#
# ruff and mypy come with the `test` extra; the script uses the active environment's python or $PYTHON.
# mypy runs only on the given paths under src/ and reports only their problems (it still reads the modules
# they import). The format check is off by default: the code is formatted once, after the open branches merge.
# Every check runs even when an earlier one fails; the end is a summary per package (src/medglip/<package>,
# or a top-level module, or a path outside src/): clean, or how many ruff / mypy problems it has, and, when
# paths are given, which packages this run did not check. Exit status 0 only when everything checked is clean.
set -uo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python}
paths=("$@")
[ ${#paths[@]} -eq 0 ] && paths=(src/medglip)
for p in "${paths[@]}"; do
  [ -e "$p" ] || { echo "check_code.sh: no such path: $p" >&2; exit 2; }
done
typed=()
for p in "${paths[@]}"; do
  case "$p" in src/*) typed+=("$p") ;; esac
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
echo "== ruff check ${paths[*]}"
"$py" -m ruff check --output-format concise "${paths[@]}" | tee "$tmp/ruff" || status=1
if [ "${FORMAT:-0}" = 1 ]; then
  echo "== ruff format --check ${paths[*]}"
  "$py" -m ruff format --check --output-format concise "${paths[@]}" | tee "$tmp/format" || status=1
fi
if [ ${#typed[@]} -gt 0 ]; then
  echo "== mypy ${typed[*]}"
  # the given paths replace pyproject's `files`; problems in imported modules outside them are left out below
  "$py" -m mypy "${typed[@]}" > "$tmp/mypy" 2>&1
  "$py" - "$tmp/mypy" "${typed[@]}" <<'EOF' || status=1
import sys
from pathlib import Path

out, roots = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
lines = out.read_text().splitlines()
ours = [ln for ln in lines if ": error:" in ln or ": note:" in ln]
kept = [ln for ln in ours if any(Path(ln.split(":", 1)[0]).is_relative_to(r) for r in roots)]
crashed = not ours and not any(ln.startswith("Success") for ln in lines)
print("\n".join(kept if not crashed else lines) or "no mypy problems in the paths given")
out.write_text("\n".join(ln for ln in kept if ": error:" in ln) + "\n")
sys.exit(1 if crashed or any(": error:" in ln for ln in kept) else 0)
EOF
fi

echo "== summary"
"$py" - "$tmp/ruff" "$tmp/mypy" "$tmp/format" "${paths[@]}" <<'EOF'
import re
import sys
from collections import Counter
from pathlib import Path

ruff_out, mypy_out, format_out, paths = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:]
PKG = Path("src/medglip")


def package(path: str) -> str:
    p = Path(path)
    if p.is_relative_to(PKG) and p != PKG:
        first = p.relative_to(PKG).parts[0]
        return first.removesuffix(".py")
    return str(p.parts[0]) if p.parts else str(p)


def problem_files(out: Path) -> list[str]:
    """The file of each problem reported in ``out`` (one per problem)."""
    if not out.exists():
        return []
    found = (re.match(r"^([^:\s]+\.py):\d+:", ln) for ln in out.read_text().splitlines())
    return [m.group(1) for m in found if m]


everything = sorted({package(str(p)) for p in PKG.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()})
checked, whole = set(), set()
for given in paths:
    g = Path(given).resolve()
    if PKG.resolve().is_relative_to(g):  # src/medglip itself or a folder above it
        checked |= set(everything)
        whole |= set(everything)
    else:
        checked.add(package(given))
        if g.parent in (PKG.resolve(), Path.cwd()):  # a package, a top-level module or a top folder
            whole.add(package(given))
ruff_files, mypy_files, format_files = problem_files(ruff_out), problem_files(mypy_out), problem_files(format_out)
ruff, mypy = Counter(map(package, ruff_files)), Counter(map(package, mypy_files))
fmt = Counter(map(package, format_files))  # empty unless FORMAT=1
for name in sorted(checked):
    r, m, f = ruff.get(name, 0), mypy.get(name, 0), fmt.get(name, 0)
    part = "" if name in whole else " (only the paths given)"
    files = sorted({f for f in ruff_files + mypy_files + format_files
                    if package(f) == name and f.startswith(f"{PKG}/{name}/")})
    where = f" in {', '.join(Path(f).name for f in files)}" if files and len(files) <= 4 else ""
    unformatted = f", {f} file(s) unformatted" if f else ""
    print(f"  {name:<14} " + ("clean" if not (r or m or f) else
                              f"NOT CLEAN: {r} ruff, {m} mypy problem(s){unformatted}{where}") + part)
unclean = sorted(n for n in checked if ruff.get(n) or mypy.get(n) or fmt.get(n))
print(f"still not clean: {', '.join(unclean) if unclean else 'none'}")
unchecked = [n for n in everything if n not in checked]
if unchecked:
    print(f"not checked in this run: {', '.join(unchecked)}")
EOF
[ "$status" -ne 0 ] && echo "FAILED: a check above did not pass or could not run (see its output)"
exit $status
