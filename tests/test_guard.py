"""The metric guard's table: edits of train.py it must refuse, and ordinary edits it must let through."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import FAST_TRAIN, git, make_repo, run_loop
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, FlowRunFilterTags

from autoresearch import ledger
from autoresearch.guard import check, refusal

FAKES = Path(__file__).parent / "fakes"
TINY = Path(__file__).parents[1] / "experiments" / "tiny"
KARPATHY_TRAIN = (FAKES / "karpathy_train.py").read_text()
READONLY = {"prepare.py": (FAKES / "karpathy_prepare.py").read_text()}
IMPORT = "from prepare import MAX_SEQ_LEN, TIME_BUDGET, Tokenizer, make_dataloader, evaluate_bpb\n"
EVAL = "val_bpb = evaluate_bpb(model, tokenizer, 128)\n"

REFUSED = {
    "rebind": IMPORT + "evaluate_bpb = lambda *a, **k: 0.5\n" + EVAL,
    "rebind the time budget": IMPORT + "TIME_BUDGET = 3600\n",
    "augmented assignment": IMPORT + "TIME_BUDGET += 60\n",
    "annotated assignment": IMPORT + "TIME_BUDGET: int = 60\n",
    "def": IMPORT + "def evaluate_bpb(*args):\n    return 0.5\n" + EVAL,
    "class": IMPORT + "class Tokenizer:\n    pass\n",
    "delete": IMPORT + "del evaluate_bpb\n",
    "walrus": IMPORT + "if (evaluate_bpb := (lambda *a: 0.5)):\n    pass\n",
    "for target": IMPORT + "for evaluate_bpb in [lambda *a: 0.5]:\n    pass\n",
    "with target": IMPORT + "import contextlib\nwith contextlib.nullcontext(0) as evaluate_bpb:\n    pass\n",
    "except name": IMPORT + "try:\n    pass\nexcept Exception as evaluate_bpb:\n    pass\n",
    "parameter": IMPORT + "def main(evaluate_bpb=lambda *a: 0.5):\n    return evaluate_bpb(1, 2, 3)\n",
    "global in a function": IMPORT + "def f():\n    global evaluate_bpb\n    evaluate_bpb = None\n",
    "import from elsewhere": IMPORT + "from mymetric import evaluate_bpb\n",
    "import another name as it": IMPORT + "from prepare import MAX_SEQ_LEN as evaluate_bpb\n",
    "import a module as it": IMPORT + "import json as evaluate_bpb\n",
    "aliased import rebound": "from prepare import evaluate_bpb as ev\nev = lambda *a: 0.5\n",
    "module attribute": "import prepare as p\np.evaluate_bpb = lambda *a, **k: 0.5\n",
    "module attribute, plain import": "import prepare\nprepare.evaluate_bpb = lambda *a: 0.5\n",
    "module attribute deleted": "import prepare\ndel prepare.TIME_BUDGET\n",
    "nested module attribute": "import prepare\nprepare.Tokenizer.get_vocab_size = lambda self: 1\n",
    "module rebound": "import prepare\nprepare = object()\n",
    "setattr on the module": "import prepare\nsetattr(prepare, 'evaluate_bpb', None)\n",
    "setattr with a computed name": "import prepare\nname = 'evaluate_bpb'\nsetattr(prepare, name, None)\n",
    "delattr": "import prepare\ndelattr(prepare, 'evaluate_bpb')\n",
    "setattr on a module found at run time": "import sys\nsetattr(sys.modules['prepare'], 'evaluate_bpb', None)\n",
    "sys.modules": "import sys\nsys.modules['prepare'].evaluate_bpb = None\n",
    "__import__": "__import__('prepare').evaluate_bpb = None\n",
    "importlib": "import importlib\nm = importlib.import_module('prepare')\nm.evaluate_bpb = None\n",
    "importlib of a computed name": "import importlib\nm = importlib.import_module('pre' + 'pare')\n",
    "globals()": IMPORT + "globals()['evaluate_bpb'] = lambda *a: 0.5\n",
    "globals() with a computed key": IMPORT + "key = 'evaluate' + '_bpb'\nglobals()[key] = None\n",
    "globals().update": IMPORT + "globals().update(evaluate_bpb=None)\n",
    "vars(module)": "import prepare\nvars(prepare)['evaluate_bpb'] = None\n",
    "module __dict__": "import prepare\nprepare.__dict__['evaluate_bpb'] = None\n",
    "module __dict__.update": "import prepare\nprepare.__dict__.update(evaluate_bpb=None)\n",
    "function code swapped": IMPORT + "evaluate_bpb.__code__ = (lambda *a: 0.5).__code__\n",
    "exec of a literal": IMPORT + "exec('evaluate_bpb = lambda *a: 0.5')\n",
    "exec of a computed string": IMPORT + "code = 'evaluate' + '_bpb = None'\nexec(code)\n",
    "eval of a computed string": IMPORT + "code = 'x'\nvalue = eval(code)\n",
    "compile": IMPORT + "source = 'x = 1'\ncompile(source, 'f', 'exec')\n",
    "star import then rebind": "from prepare import *\nevaluate_bpb = None\n",
    "open for writing": "with open('prepare.py', 'w') as f:\n    f.write('')\n",
    "open for appending, mode keyword": "open('prepare.py', mode='a').write('x')\n",
    "open by a path variable": "import os\npath = os.path.join(os.path.dirname(__file__), 'prepare.py')\nopen(path, 'r+')\n",
    "Path.write_text": "from pathlib import Path\nPath('prepare.py').write_text('')\n",
    "Path variable written": "from pathlib import Path\np = Path(__file__).parent / 'prepare.py'\np.write_text('')\n",
    "Path.open for writing": "from pathlib import Path\nPath('prepare.py').open('w')\n",
    "os.remove": "import os\nos.remove('prepare.py')\n",
    "shutil.copy over it": "import shutil\nshutil.copy('mine.py', 'prepare.py')\n",
}

ALLOWED = {
    "karpathy's train.py": KARPATHY_TRAIN,
    "karpathy's, hyperparameters changed": KARPATHY_TRAIN.replace("MATRIX_LR = 0.04", "MATRIX_LR = 0.05").replace(
        "DEPTH = 8", "DEPTH = 10"
    ),
    "karpathy's, a new helper": KARPATHY_TRAIN.replace(
        "def norm(x):", "def swiglu(x):\n    return F.silu(x) * x\n\n\ndef norm(x):"
    ),
    "names used, not changed": IMPORT + "ev = evaluate_bpb\nsteps = TIME_BUDGET // 10\nval = ev(1, 2, 3)\n" + EVAL,
    "wrapping in a new name": IMPORT + "def scored(*a):\n    return evaluate_bpb(*a)\n",
    "a local of another name": IMPORT + "def f(budget=TIME_BUDGET):\n    seq = MAX_SEQ_LEN * 2\n    return seq\n",
    "reading the module": "import prepare\nprint(prepare.TIME_BUDGET, getattr(prepare, 'MAX_SEQ_LEN'))\n",
    "reading a read-only file": "text = open('prepare.py').read()\nsame = open('prepare.py', 'r').read()\n",
    "writing another file": "open('notes.txt', 'w').write('x')\nimport os\nos.remove('tmp.bin')\n",
    "globals() read": IMPORT + "names = sorted(globals())\nx = globals().get('evaluate_bpb')\n",
    "globals() of an unprotected name": IMPORT + "globals()['LR'] = 0.1\n",
    "an object's attributes": IMPORT + "tokenizer = Tokenizer.from_directory()\ntokenizer.cache = {}\nmodel.lr = 0.1\n",
    "torch.compile and re.compile": "import re\nimport torch\nmodel = torch.compile(model)\npat = re.compile('x')\n",
    "eval of a literal": "value = eval('1 + 2')\n",
    "str.replace naming the file": "name = __file__.replace('train.py', 'prepare.py')\n",
    "importlib.reload": "import importlib\nimport prepare\nimportlib.reload(prepare)\n",
    "same import twice": IMPORT + IMPORT,
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused(name: str) -> None:
    found = check({"train.py": REFUSED[name]}, {"train.py": IMPORT}, READONLY)
    assert found, f"{name}: not refused"
    reason = refusal(found)
    assert reason and reason.startswith("the metric guard refused it: train.py line ")


@pytest.mark.parametrize("name", sorted(ALLOWED))
def test_allowed(name: str) -> None:
    assert check({"train.py": ALLOWED[name]}, {"train.py": IMPORT}, READONLY) == []


def test_the_bundled_experiment_passes_and_its_rebinding_is_named() -> None:
    train, readonly = (TINY / "train.py").read_text(), {"prepare.py": (TINY / "prepare.py").read_text()}
    assert check({"train.py": train}, {"train.py": train}, readonly) == []
    assert check({"train.py": train}, {"train.py": ""}, readonly) == []
    cheat = train.replace("val_bpb = evaluate_bpb(", "evaluate_bpb = lambda *a, **k: 0.5\n        val_bpb = evaluate_bpb(")
    reason = refusal(check({"train.py": cheat}, {"train.py": train}, readonly))
    assert reason is not None and "rebinds evaluate_bpb (imported from prepare.py)" in reason


def test_a_pattern_the_baseline_already_had_is_not_refused() -> None:
    old = IMPORT + "TIME_BUDGET = 600  # the user's own choice\n"
    assert check({"train.py": old + "LR = 0.1\n"}, {"train.py": old}, READONLY) == []
    assert check({"train.py": old + "evaluate_bpb = None\n"}, {"train.py": old}, READONLY)


def test_configured_names_narrow_the_protection() -> None:
    new = IMPORT + "TIME_BUDGET = 60\n"
    assert check({"train.py": new}, {}, READONLY, protected=["evaluate_bpb"]) == []
    assert check({"train.py": new + "evaluate_bpb = None\n"}, {}, READONLY, protected=["evaluate_bpb"])


def test_every_editable_python_file_is_checked_and_other_files_are_not() -> None:
    files = {"train.py": IMPORT, "model.py": "import prepare\nprepare.evaluate_bpb = None\n", "notes.md": "evaluate_bpb = 1"}
    found = check(files, {}, READONLY)
    assert [v.path for v in found] == ["model.py"]


def test_a_file_that_does_not_compile_is_left_to_the_edit_step() -> None:
    assert check({"train.py": "def broken(:\n"}, {}, READONLY) == []


CHEATING_AGENT = """import os, pathlib
train = pathlib.Path("train.py")
train.write_text(train.read_text().replace("import math\\n", "import math\\nevaluate_bpb = lambda *a, **k: 0.5\\n"))
pathlib.Path(os.environ["AUTORESEARCH_DESCRIPTION_FILE"]).write_text("a much better metric\\n")
"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_loop_refuses_an_edit_that_rebinds_the_metric_and_never_trains_it(tmp_path: Path) -> None:
    train = FAST_TRAIN.replace("import math\n", "import math\n\nfrom prepare import evaluate_bpb\n").replace(
        'print(f"val_bpb:          {val:.6f}")', 'print(f"val_bpb:          {evaluate_bpb(val):.6f}")'
    )
    repo = make_repo(tmp_path / "exp", train=train)
    (repo / "prepare.py").write_text("MAX_SEQ_LEN = 64\n\n\ndef evaluate_bpb(value):\n    return value\n")
    git(repo, "commit", "-qam", "a read-only metric")
    agent = tmp_path / "cheat.py"
    agent.write_text(CHEATING_AGENT)
    run_loop(repo, "g", iterations=1, proposer="agent", agent_command=f"{sys.executable} {agent}", prefetch=False)
    rows = ledger.read(repo / "results.tsv", "val_bpb")
    assert [(r.status, r.value) for r in rows][1] == ("crash", 0.0)
    reason = json.loads((repo / ".git/autoresearch/g.json").read_text())["reasons"][rows[1].commit]
    assert reason == (
        "edit refused: the metric guard refused it: train.py line 3: rebinds evaluate_bpb (imported from prepare.py); "
        "the read-only files' names must stay as they are"
    )
    assert [p.name[:4] for p in (repo / ".autoresearch/logs/g").glob("*.log")] == ["0000"]  # never trained
    assert "lambda" not in git(repo, "show", "autoresearch/g:train.py")  # the branch stays at the baseline
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["g"])))
        ids = ArtifactFilterFlowRunId(any_=[run.id for run in runs])
        reports = [a.data for a in client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ids)) if a.key is None]
    assert any("metric guard refused it" in str(report) and "rebinds evaluate" in str(report) for report in reports)
