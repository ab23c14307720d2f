"""Where projected gradient ascent ends on the BARPO paper's toy ISA-MDP (Appendix D), under
SPO, ARPO and BARPO, for several step sizes and step counts: runs ``robustrl theory basins`` and
collects its JSON into benchmarks/results/theory_basins.{json,md}, and draws the landscape.

    OMP_NUM_THREADS=1 python benchmarks/theory_basins.py [--grid 30]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
ROBUSTRL = [sys.executable, "-m", "robustrl.cli"]
CLAIM = "about one third of initial policies stuck at the deceptive FOSP under ARPO, none under BARPO (Section 3.3, Figure 3)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--grid", type=int, default=30)
    args = parser.parse_args()
    settings = [(lr, steps) for lr in (0.01, 0.05, 0.2, 0.5) for steps in (100, 1000, 3000)]
    rows, everything = [], []
    with tempfile.TemporaryDirectory() as folder:
        for objective in ("spo", "arpo", "barpo"):
            for lr, steps in settings:
                out = Path(folder) / f"{objective}-{lr}-{steps}.json"
                command = [
                    "theory",
                    "basins",
                    "--objective",
                    objective,
                    "--grid",
                    str(args.grid),
                    "--lr",
                    str(lr),
                    "--steps",
                    str(steps),
                    "--json",
                    str(out),
                ]
                start = time.perf_counter()
                subprocess.run(ROBUSTRL + command, check=True, capture_output=True, text=True)
                seconds = time.perf_counter() - start
                result = json.loads(out.read_text())
                fractions = result["fractions"]
                rows.append(
                    {
                        "objective": objective,
                        "lr": lr,
                        "steps": steps,
                        "optimal": fractions.get("optimal (1.00, 1.00)", 0.0),
                        "deceptive": fractions.get("deceptive (0.00, 0.00)", 0.0),
                        "not_converged": fractions.get("not converged", 0.0),
                        "other": {
                            k: v
                            for k, v in fractions.items()
                            if k not in ("optimal (1.00, 1.00)", "deceptive (0.00, 0.00)", "not converged")
                        },
                        "hovering_deceptive": result["classes"].get("deceptive (0.00, 0.00)", {}).get("hovering", 0),
                        "seconds": round(seconds, 1),
                        "command": "robustrl " + " ".join(command[:-2]),
                    }
                )
                everything.append(
                    {"settings": result["settings"], "fractions": fractions, "classes": result["classes"]}
                )
    (RESULTS / "theory_basins.json").write_text(json.dumps({"claim": CLAIM, "runs": everything}, indent=1) + "\n")
    starts = args.grid**2
    lines = [
        "# Basins of gradient ascent on the BARPO toy ISA-MDP (Appendix D)",
        "",
        f"Paper's claim: {CLAIM}.",
        "",
        f"Setting: the toy of Appendix D (2 states, 2 actions, B(s1) = B(s2) = {{s1, s2}}, gamma 0.9, mu0 uniform), "
        f"direct parameterisation (alpha, beta) = (pi(a1|s1), pi(a1|s2)), starts at the {args.grid} x {args.grid} = {starts} "
        "cell centres of [0, 1]^2, exact gradients, x <- clip(x + lr * dJ/dx, 0, 1). ARPO holds nu*(pi) (exact, policy "
        "iteration) at its argmin each step; BARPO holds the max-KL adversary; ties keep the true state. An end point is "
        "classed at a FOSP when it is there after rounding to 2 decimals or hovers within one gradient step of it "
        "(ARPO's two-cycle across the diagonal next to (0, 0) at larger lr: column 'hovering'); else 'not converged'. "
        "FOSPs are checked by one-sided slopes of the true objective in 64 directions.",
        "",
        "| objective | lr | steps | at optimum (1,1) | at deceptive FOSP (0,0) | hovering at (0,0) | not converged | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['objective'].upper()} | {row['lr']} | {row['steps']} | {row['optimal']:.3f} | {row['deceptive']:.3f} | "
            f"{row['hovering_deceptive']} | {row['not_converged']:.3f}{' ' + str(row['other']) if row['other'] else ''} | {row['seconds']} |"
        )
    lines += [
        "",
        "Commands: `robustrl theory basins --objective OBJ --grid N --lr LR --steps K --json FILE` (this table: "
        "`python benchmarks/theory_basins.py`; every fraction and class in `theory_basins.json`).",
        "",
    ]
    (RESULTS / "theory_basins.md").write_text("\n".join(lines))
    for suffix in ("png", "svg"):
        subprocess.run(
            [*ROBUSTRL, "theory", "landscape", "--out", str(RESULTS / f"theory_landscape_toy.{suffix}")],
            check=True,
            capture_output=True,
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
