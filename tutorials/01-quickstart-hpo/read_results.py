"""Read the results of the quick-start run, as you would in your own analysis script.

    python tutorials/01-quickstart-hpo/read_results.py runs/quickstart/quickstart
"""

import json
import sys
from pathlib import Path

import yaml

experiment = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/quickstart/quickstart")
results = json.loads((experiment / "results.json").read_text())
print(f"{len(results['trials'])} trials, ranked by {results['metric']} ({results['mode']})")
metric = results["metric"]
for row in results["trials"]:  # best first; the sampled values are columns too
    print(f"  #{row['rank']} {row['trial_id']}  {row['status']:<14} epochs={row['epochs']:<2} "
          f"{metric}={row[metric]}")
print("best:", results["best"]["config"])
best = yaml.safe_load((experiment / "best_config.yaml").read_text())
print("best_config.yaml sets:", {k: best[k] for k in results["best"]["config"]})
