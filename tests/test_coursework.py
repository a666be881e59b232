"""The coursework build and the autograder, end to end, with otter-grader (no Docker, no network).

For every notebook with exercises: the student build holds no solution code and no hidden tests;
a blank student notebook runs to the end; grading gives full marks to the reference notebook, zero
to the blank one, and loses exactly one question's points for one deliberately wrong answer.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "coursework.py"
sys.path.insert(0, str(SCRIPT.parent))
import coursework  # noqa: E402

from tests.test_license import NOTICE  # noqa: E402

NOTEBOOKS = [p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) if coursework.has_assignment(p)]

_SECOND_MOMENT = "second_moment = (float(activation(1.0)) ** 2 + float(activation(-1.0)) ** 2) / 2"  # 02 Ex 3
_CLIP_BODY = ("    total = math.sqrt(sum(float(np.sum(g**2)) for g in grads))\n"
              "    factor = min(1.0, max_norm / (total + 1e-6))\n    return [g * factor for g in grads], total")  # 05 Ex 1
_MEDIAN = "return float(np.median(norms[np.isfinite(norms)]))"  # 05 Ex 2

# One deliberately wrong answer per notebook: (text in the reference solution, wrong text, question it breaks).
WRONG_ANSWERS = {
    "00_start_here": [  # the warm-up's typical slips: each must cost the question
        ("return float(np.prod(factors))", "return float(np.sum(factors))", "ex00_warmup"),
        ("return float(np.prod(factors))", "return float(factors[-1])", "ex00_warmup"),  # the last layer only
        ("return float(np.prod(factors))", "return float(factors[0] ** len(factors))", "ex00_warmup"),
        ("return float(np.prod(factors))", "return float(np.mean(factors) ** len(factors))", "ex00_warmup"),
        ("return float(np.prod(factors))", "return float(np.prod(factors)) if len(factors) else 0.0", "ex00_warmup"),
    ],
    "01_chain_rule_product": [  # several typical mistakes per question: each must cost that question's points
        ("grad_z = h_out * (1 - h_out) * grad", "grad_z = h_in * (1 - h_in) * grad", "ex01_backward_norms"),
        ("grad_z = h_out * (1 - h_out) * grad", "s = 1 / (1 + np.exp(-h_out))\n        grad_z = s * (1 - s) * grad",
         "ex01_backward_norms"),  # sigma' of the output, not sigma'(z) written with the output
        ("grad_z = h_out * (1 - h_out) * grad", "grad_z = (1 - h_out**2) * grad", "ex01_backward_norms"),  # tanh's
        ("grad_z = h_out * (1 - h_out) * grad", "grad_z = grad", "ex01_backward_norms"),  # no activation factor
        ("grad = grad_z @ w\n", "grad = grad_z @ w.T\n", "ex01_backward_norms"),  # right only for square layers
        ("np.linalg.norm(grad_z.T @ h_in)", "np.linalg.norm(grad_z.T @ h_out)", "ex01_backward_norms"),
        ("return np.array(grad_norms[::-1]), np.array(weight_grad_norms[::-1])",
         "return np.array(grad_norms), np.array(weight_grad_norms)", "ex01_backward_norms"),  # top first
        ("    h = [x]\n    for w in weights:\n        h.append(1 / (1 + np.exp(-(h[-1] @ w.T))))\n",
         "    run = chain.backward_pass(weights, x, top_grad, 'sigmoid')\n"
         "    return run.grad_norms, run.weight_grad_norms\n", "ex01_backward_norms"),  # the helper it teaches
        ("    h = [x]\n    for w in weights:\n        h.append(1 / (1 + np.exp(-(h[-1] @ w.T))))\n",
         "    h = [torch.tensor(x, requires_grad=True)]\n    w_t = [torch.tensor(w, requires_grad=True) for w in weights]\n"
         "    for w in w_t:\n        h.append(torch.sigmoid(h[-1] @ w.T))\n        h[-1].retain_grad()\n"
         "    (h[-1] * torch.tensor(top_grad)).sum().backward()\n"
         "    return [np.array([t.grad.norm().item() for t in ts]) for ts in (h, w_t)]\n",
         "ex01_backward_norms"),  # autograd instead of a backward pass
        ("scale = np.std(w) * np.sqrt(w.shape[1])", "scale = np.linalg.norm(w, 2)", "ex01_predict_profile"),
        ("scale = np.std(w) * np.sqrt(w.shape[1])", "scale = 1.0", "ex01_predict_profile"),  # scale not estimated
        ("scale = np.std(w) * np.sqrt(w.shape[1])", "scale = np.std(w) * np.sqrt(w.shape[0])", "ex01_predict_profile"),
        ("scale * np.sqrt(np.mean(f_prime(z) ** 2))", "scale * np.mean(f_prime(z))", "ex01_predict_profile"),  # mean, not rms
        ("scale * np.sqrt(np.mean(f_prime(z) ** 2))", "scale * np.sqrt(np.mean(f_prime(f(z)) ** 2))",
         "ex01_predict_profile"),
        ('"sigmoid": (lambda z: 1 / (1 + np.exp(-z)),\n                    lambda z: 1 / (2 + np.exp(z) + np.exp(-z))),',
         '"sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda z: 0.25 + 0 * z),',
         "ex01_predict_profile"),  # the ceiling 1/4 instead of the slopes
        ("return np.append(np.cumprod(factors[::-1])[::-1], 1.0)  # layers above l", "return np.append(np.cumprod(factors), 1.0)",
         "ex01_predict_profile"),  # the product of the layers below
        ("return np.append(np.cumprod(factors[::-1])[::-1], 1.0)  # layers above l",
         "return np.cumprod(([1.0] + factors)[::-1])[::-1]", "ex01_predict_profile"),  # each layer's own factor too
        ("    h, factors = x, []\n    for w in weights:\n        z = h @ w.T\n        scale = ",
         "    h = [x]\n    for w in weights:\n        h.append(f(h[-1] @ w.T))\n    grad = np.ones_like(h[-1])\n"
         "    norms = [np.linalg.norm(grad)]\n    for w, h_in in zip(reversed(weights), reversed(h[:-1])):\n"
         "        grad = (f_prime(h_in @ w.T) * grad) @ w\n        norms.append(np.linalg.norm(grad))\n"
         "    return np.array(norms[::-1]) / norms[0]\n"
         "    h, factors = x, []\n    for w in weights:\n        z = h @ w.T\n        scale = ",
         "ex01_predict_profile"),  # a measured backward pass, not the prediction
        ("    h, factors = x, []\n    for w in weights:\n        z = h @ w.T\n        scale = ",
         "    run = chain.backward_pass(weights, x, np.ones((len(x), len(weights[-1]))), activation)\n"
         "    factors = [np.std(w) * np.sqrt(w.shape[1]) * r for w, r in zip(weights, run.derivative_rms)]\n"
         "    return np.append(np.cumprod(factors[::-1])[::-1], 1.0)\n"
         "    h, factors = x, []\n    for w in weights:\n        z = h @ w.T\n        scale = ",
         "ex01_predict_profile"),  # the helper it teaches
        ("return int(below[-1]) + 1 if below.size else 0", "return int(below.size)", "ex01_dying_layer"),  # counts
        ("return int(below[-1]) + 1 if below.size else 0", "return int(below[0]) + 1 if below.size else 0",
         "ex01_dying_layer"),  # the lowest layer below the bound, not the first met going down
        ("return int(below[-1]) + 1 if below.size else 0", "return int(below[-1]) if below.size else 0",
         "ex01_dying_layer"),  # 0-based
        ("below = np.flatnonzero(norms < threshold * norms[-1])", "below = np.flatnonzero(norms < threshold)",
         "ex01_dying_layer"),  # an absolute bound
        ("below = np.flatnonzero(norms < threshold * norms[-1])", "below = np.flatnonzero(norms < threshold * norms[0])",
         "ex01_dying_layer"),  # relative to the first layer
        ("below = np.flatnonzero(norms < threshold * norms[-1])", "below = np.flatnonzero(norms < threshold * norms.max())",
         "ex01_dying_layer"),  # relative to the largest norm, not the top layer's
        ("def sigmoid_chain_backward(weights, x, top_grad):",
         "from torch.autograd import grad as autograd_grad  # bound before the tests run\n\n\n"
         "def sigmoid_chain_backward(weights, x, top_grad):\n"
         "    h = [torch.tensor(x, requires_grad=True)]\n"
         "    w_t = [torch.tensor(w, requires_grad=True) for w in weights]\n"
         "    for w in w_t:\n        h.append(torch.sigmoid(h[-1] @ w.T))\n"
         "    grads = autograd_grad((h[-1] * torch.tensor(top_grad)).sum(), h[:-1] + w_t)\n"
         "    norms = [g.norm().item() for g in grads]\n"
         "    return np.array(norms[:len(weights)] + [np.linalg.norm(top_grad)]), np.array(norms[len(weights):])\n\n\n"
         "def _unused(weights, x, top_grad):", "ex01_backward_norms"),  # autograd's grad, imported early
    ],
    "02_initialization": [  # each typical mistake must cost its question's points
        ("return math.sqrt(2.0 / (1.0 + slope**2))", "return math.sqrt(2.0)", "ex02_leaky_gain"),
        ("return gain * math.sqrt(6.0 / (fan_in + fan_out))", "return init.xavier_bound(fan_in, fan_out, gain)",
         "ex02_glorot_bound"),  # calls the helper it is meant to derive
        ("return gain * math.sqrt(6.0 / (fan_in + fan_out))", "return gain * math.sqrt(2.0 / (fan_in + fan_out))",
         "ex02_glorot_bound"),  # the std, not the bound
        (_SECOND_MOMENT, "second_moment = 0.5", "ex02_any_activation"),  # ReLU's, whatever the unit
        (_SECOND_MOMENT, "z = np.random.default_rng(0).standard_normal(1_000_000)\n"
         "    second_moment = float(np.var(activation(z)))", "ex02_any_activation"),  # Var(f(z)), not E[f(z)^2]
        (_SECOND_MOMENT, "second_moment = (1.0 + float(activation(-1.0)) ** 2) / 2",
         "ex02_any_activation"),  # leaky ReLU's formula: assumes the positive slope is 1
        (_SECOND_MOMENT, "second_moment = float(activation(1.0)) ** 2 + float(activation(-1.0)) ** 2",
         "ex02_any_activation"),  # each half of the Gaussian carries half of E[z^2]: forgot the 1/2
        ("return math.sqrt(1.0 / (fan_in * second_moment))", "return 1.0 / (fan_in * second_moment)",
         "ex02_any_activation"),  # a variance, not a std
        ("return math.sqrt(1.0 / (fan_in * second_moment))", "return math.sqrt(1.0 / second_moment)",
         "ex02_any_activation"),  # the gain without 1/sqrt(fan_in)
        ("    " + _SECOND_MOMENT + "\n    return math.sqrt(1.0 / (fan_in * second_moment))",
         "    a, b = float(activation(1.0)), -float(activation(-1.0))\n"
         "    return init.kaiming_std(fan_in, 'leaky_relu', a=b / a) / a", "ex02_any_activation"),  # the helper
        ("def variance_preserving_std(activation, fan_in):",
         "from torch.nn.init import calculate_gain as cg  # bound before the tests run\n\n\n"
         "def variance_preserving_std(activation, fan_in):\n    a, b = float(activation(1.0)), float(activation(-1.0))\n"
         "    return cg('leaky_relu', -b / a) / abs(a) / math.sqrt(fan_in)\n\n\n"
         "def _unused(activation, fan_in):", "ex02_any_activation"),  # torch's gain, bound early
        ("def variance_preserving_std(activation, fan_in):",
         "def variance_preserving_std(activation, fan_in, cg=torch.nn.init.calculate_gain):\n"
         "    a, b = float(activation(1.0)), float(activation(-1.0))\n"
         "    return cg('leaky_relu', -b / a) / abs(a) / math.sqrt(fan_in)\n\n\n"
         "def _unused(activation, fan_in):", "ex02_any_activation"),  # torch's gain as a default argument
        ("return math.sqrt(2.0 / (1.0 + slope**2))",
         "import torch\n\n    return torch.nn.init.calculate_gain('leaky_relu', slope)", "ex02_leaky_gain"),  # torch's gain
        ("return math.sqrt(2.0 / (1.0 + slope**2))", "return init.calculate_gain('leaky_relu', slope)",
         "ex02_leaky_gain"),  # the helper
        ("def leaky_relu_gain(slope):", "from torch.nn.init import calculate_gain as early_gain\n\n\n"
         "def leaky_relu_gain(slope):\n    return early_gain('leaky_relu', slope)\n\n\n"
         "def _unused(slope):", "ex02_leaky_gain"),  # torch's, bound before the tests run
    ],
    "03_gradient_checking": [  # several typical mistakes per question: each must cost that question's points
        ("grad[index] = (plus - minus) / (2 * eps)", "grad[index] = (plus - minus) / eps", "ex03_centered_difference"),
        ("x[index] = original - eps\n        minus = f(x)\n        x[index] = original\n"
         "        grad[index] = (plus - minus) / (2 * eps)", "x[index] = original\n        minus = f(x)\n"
         "        grad[index] = (plus - minus) / eps", "ex03_centered_difference"),  # forward difference
        ("        x[index] = original\n        grad", "        grad", "ex03_centered_difference"),  # x not restored
        ("x[index] = original + eps\n        plus = f(x)\n        x[index] = original - eps\n        minus = f(x)\n"
         "        x[index] = original\n", "x[index] += eps\n        plus = f(x)\n        x[index] -= 2 * eps\n"
         "        minus = f(x)\n        x[index] += eps\n", "ex03_centered_difference"),  # round-off left in x
        ("    grad = np.zeros_like(x)\n", "    grad = x\n", "ex03_centered_difference"),  # writes into the caller's x
        ("    grad = np.zeros_like(x)\n", "    eps = 1e-6\n    grad = np.zeros_like(x)\n",
         "ex03_centered_difference"),  # ignores the eps it is given
        ("    grad = np.zeros_like(x)\n", "    return gradcheck.numerical_gradient(f, x, eps)\n",
         "ex03_centered_difference"),  # calls the helper it is meant to write
        ("    grad = np.zeros_like(x)\n", "    from helpers.gradcheck import numerical_gradient as helper\n"
         "    return helper(f, x, eps)\n", "ex03_centered_difference"),  # the helper under another name
        ("denominator = abs(numerical) + abs(analytic)", "denominator = abs(numerical + analytic)", "ex03_directional"),
        ("denominator = abs(numerical) + abs(analytic)", "denominator = max(abs(numerical), abs(analytic))",
         "ex03_directional"),
        ("denominator = abs(numerical) + abs(analytic)", "denominator = abs(numerical)", "ex03_directional"),
        ("(f(x + eps * u) - f(x - eps * u)) / (2 * eps)", "(f(x + eps * u) - f(x)) / eps", "ex03_directional"),
        ("(f(x + eps * u) - f(x - eps * u)) / (2 * eps)", "(f(x + eps * u) - f(x - eps * u)) / eps",
         "ex03_directional"),
        ("return 0.0 if denominator == 0 else abs", "return abs", "ex03_directional"),  # nan for 0/0
        ("    numerical = (f(x + eps * u) - f(x - eps * u)) / (2 * eps)\n",
         "    x += eps * u\n    plus = f(x)\n    x -= 2 * eps * u\n    numerical = (plus - f(x)) / (2 * eps)\n",
         "ex03_directional"),  # moves the caller's x
        ('BUGGY_LINE = "dz2 = dh2 * (1 - h1**2)"', 'BUGGY_LINE = "dz1 = dh1 * (1 - h1**2)"', "ex03_locate_bug"),
        ('bug_report.items() if r.verdict != "correct"}', 'bug_report.items() if r.verdict != "correct"} - {"W1", "b1"}',
         "ex03_locate_bug"),  # only the layer with the bug, not what it propagates to
        ("    dz2 = dh2 * (1 - h2**2)\n", "    dz2 = dh2 * (1 - h1**2)\n", "ex03_fix_backward"),  # unfixed
        ("    dz2 = dh2 * (1 - h2**2)\n", "    dz2 = dh2 * (1 - h2)\n", "ex03_fix_backward"),  # tanh' = 1 - h
        ('h2**2)\n    dh1 = dz2 @ params["W2"]\n    dz1 = dh1 * (1 - h1**2)\n    grads = {"W3": dlogits.T @ h2, "b3": dlogits'
         '.sum(axis=0),\n             "W2": dz2.T @ h1,', 'h2**2)\n    dh1 = dz2 @ params["W2"]\n    dz1 = dh1 * (1 - h1**2)\n'
         '    grads = {"W3": dlogits.T @ h2, "b3": dlogits.sum(axis=0),\n             "W2": dz2.T @ (h2 if h1.shape == h2.shape '
         'else h1),', "ex03_fix_backward"),  # the layer's output instead of its input, where the shapes allow it
        ("    return loss, grads\n    # END SOLUTION",
         "    return loss, {k: gradcheck.numerical_gradient(lambda w: buggy_loss_and_grads({**params, k: w}, x, y)[0],\n"
         "                                                  v.copy()) for k, v in params.items()}\n    # END SOLUTION",
         "ex03_fix_backward"),  # a numerical gradient is not a fix
    ],
    "04_l2_and_dropout": ("    return dout * keep / (1 - p)", "    return dout * keep / p", "ex04_dropout_backward"),
    "05_gradient_clipping": [  # each typical mistake must cost its question's points
        ("return [g * factor for g in grads], total", "return [g * factor for g in grads], max_norm",
         "ex05_clip_global_norm"),
        (_CLIP_BODY, "    total = math.sqrt(sum(float(np.sum(g**2)) for g in grads))\n"
         "    return [g * min(1.0, max_norm / (np.linalg.norm(g) + 1e-6)) for g in grads], total",
         "ex05_clip_global_norm"),  # each array clipped on its own norm, not the global one
        ("factor = min(1.0, max_norm / (total + 1e-6))", "factor = min(1.0, max_norm / total)",
         "ex05_clip_global_norm"),  # forgot torch's 1e-6
        ("    return [g * factor for g in grads], total", "    for g in grads:\n        g *= factor\n    return grads, total",
         "ex05_clip_global_norm"),  # scales the caller's arrays in place
        (_CLIP_BODY, "    return clipping.clip_by_global_norm(grads, max_norm)", "ex05_clip_global_norm"),  # the helper
        (_CLIP_BODY, "    params = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]\n"
         "    for p, g in zip(params, grads):\n        p.grad = torch.tensor(g.copy())\n"
         "    total = torch.nn.utils.clip_grad_norm_(params, max_norm).item()\n"
         "    return [p.grad.numpy() for p in params], total", "ex05_clip_global_norm"),  # torch's
        (_MEDIAN, "return float(np.max(norms[np.isfinite(norms)]))", "ex05_threshold"),  # the exploded steps
        (_MEDIAN, "return float(np.mean(norms[np.isfinite(norms)]))", "ex05_threshold"),  # dragged by them
        (_MEDIAN, "return float(np.median(norms))", "ex05_threshold"),  # NaN in the record
        (_MEDIAN, "return float(np.percentile(norms[np.isfinite(norms)], 99))", "ex05_threshold"),
        (_MEDIAN, "return float(np.min(norms[np.isfinite(norms)]))", "ex05_threshold"),  # clips nearly every step
        (_MEDIAN, "return float(np.median(norms[60:][np.isfinite(norms[60:])]))", "ex05_threshold"),  # lr 1.0 steps
        (_MEDIAN, "return 1.0", "ex05_threshold"),  # a constant that happens to lie in the ordinary range
        (_CLIP_BODY, "    import torch\n    from torch.nn.utils.clip_grad import clip_grad_norm_ as deep\n"
         "    params = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]\n"
         "    for p, g in zip(params, grads):\n        p.grad = torch.tensor(g.copy())\n"
         "    total = deep(params, max_norm).item()\n"
         "    return [p.grad.numpy() for p in params], total", "ex05_clip_global_norm"),  # torch's, from its module
        ("def clip_global_norm(grads, max_norm):",
         "from torch.nn.utils import clip_grad_norm_ as early_clip  # bound before the tests run\n\n\n"
         "def clip_global_norm(grads, max_norm):\n    import torch\n"
         "    params = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]\n"
         "    for p, g in zip(params, grads):\n        p.grad = torch.tensor(g.copy())\n"
         "    total = early_clip(params, max_norm).item()\n"
         "    return [p.grad.numpy() for p in params], total\n\n\n"
         "def _unused(grads, max_norm):", "ex05_clip_global_norm"),
    ],
    "07_recurrent_networks": [
        ("delta = grad_h * (1 - hs[t] ** 2)", "delta = grad_h", "ex07_bptt_weight_hh"),  # no tanh'
        ("    return grad_weight\n",
         "    w = {'weight_ih': np.zeros((len(h0[0]), 1)), 'weight_hh': weight_hh,\n"
         "         'bias_ih': np.zeros(len(h0[0])), 'bias_hh': np.zeros(len(h0[0]))}\n"
         "    cache = {'hs': hs, 'x': np.zeros(hs.shape[:2] + (1,)), 'h0': h0, 'weights': w,\n"
         "             'nonlinearity': 'tanh'}\n"
         "    grad_hs = np.zeros_like(hs)\n    grad_hs[-1] = grad_last\n"
         "    return recurrent.rnn_backward(grad_hs, cache)['weight_hh']\n",
         "ex07_bptt_weight_hh"),  # the helper it teaches, with a dummy cache
    ],
    "08_diagnose_and_fix": [  # a wrong cause costs the question even where the fix that follows from it trains
        ("cause_1 = name_the_cause(mystery_1, mystery_1_result)",
         'cause_1 = "labels" if name_the_cause(mystery_1, mystery_1_result) != "labels" else "dead"', "ex08_mystery_1"),
        ("fix_1 = FIX_FOR[cause_1]", 'fix_1 = "clip"', "ex08_mystery_1"),  # clipping repairs none of the defects
        ('    """The defect, from measurements only: loss, monitor, data and loss function."""\n',  # right for SEED 0's
         '    return "labels"\n', "ex08_mystery_1"),  # run A only: the hidden check's other seed hides unsafe_loss
    ],
    "06_normalization_and_residuals": [
        ("    dx = (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0)) / std",
         "    dx = (g - g.mean(axis=0)) / std", "ex06_batchnorm_backward"),
        ("    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)",  # calls the taught helper
         "    return batchnorm_backward(dout, (x_hat, std, gamma, True))", "ex06_batchnorm_backward"),
    ],
}


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, str(SCRIPT), "build", "--out", str(out)], check=True, capture_output=True)
    return out


def _normalized(source):
    return "\n".join(line.strip() for line in source.splitlines() if line.strip())


def _master_parts(path):
    """Solution blocks (normalized code), hidden test function names and question names of a master notebook."""
    solution_blocks, hidden_tests, questions = [], [], []
    for cell in nbformat.read(path, as_version=4).cells:
        source = cell.source
        if cell.cell_type == "raw" and source.startswith("# BEGIN QUESTION"):
            questions.append(re.search(r"name:\s*(\S+)", source).group(1))
        if cell.cell_type != "code":
            continue
        block = None
        for line in source.splitlines():
            if line.strip() == "# END SOLUTION":
                solution_blocks.append(_normalized("\n".join(block)))
                block = None
            if block is not None:
                block.append(line)
            if line.strip() == "# BEGIN SOLUTION":
                block = []
            if line.rstrip().endswith("# SOLUTION"):
                solution_blocks.append(line.split("# SOLUTION")[0].strip())
        if re.search(r"hidden:\s*true", source):
            hidden_tests.append(re.search(r"def (\w+)\(", source).group(1))
    return solution_blocks, hidden_tests, questions


def test_every_notebook_with_exercises_is_covered():
    assert [p.stem for p in NOTEBOOKS] == sorted(WRONG_ANSWERS), "add a wrong-answer case for each new notebook"


@pytest.mark.parametrize("master", NOTEBOOKS, ids=lambda p: p.stem)
def test_student_build_has_no_solutions_and_no_hidden_tests(master, dist):
    solution_blocks, hidden_tests, questions = _master_parts(master)
    assert solution_blocks and hidden_tests and questions
    student_dir = dist / master.stem / "student"
    student = nbformat.read(student_dir / master.name, as_version=4)
    student_code = "\n".join(_normalized(c.source) for c in student.cells)
    student_code += "".join(_normalized(p.read_text()) for p in (student_dir / "tests").glob("*.py"))
    for block in solution_blocks:
        assert block not in student_code, f"solution code leaked into the student build: {block!r}"
    for test in hidden_tests:
        assert test not in student_code, f"hidden test {test} leaked into the student build"
    assert any(c.cell_type == "markdown" and NOTICE in c.source for c in student.cells), "the license notice"
    checks = [c for c in student.cells if c.cell_type == "code" and c.source.startswith("grader.check(")]
    assert len(checks) == len(questions)
    assert not any(c.cell_type == "raw" for c in student.cells)
    autograder_tests = "".join(p.read_text() for p in (dist / master.stem / "autograder" / "tests").glob("*.py"))
    assert all(test in autograder_tests for test in hidden_tests)


@pytest.mark.parametrize("master", NOTEBOOKS, ids=lambda p: p.stem)
def test_grading_reference_and_blank(master, dist):
    name = master.stem
    _, _, questions = _master_parts(master)
    reference_path, blank_path = dist / name / "autograder" / master.name, dist / name / "student" / master.name
    # debug=True: grading fails if any cell raises, so the blank student notebook must run to the end
    report = coursework.grade(name, [reference_path, blank_path], dist, jobs=2, debug=True)
    # the reference grading is also the suite's run of the notebook with SEED = 0: a failing assert is an error
    for path in (reference_path, blank_path):
        assert not report[str(path)].error, f"{path}: {report[str(path)].error} (otter's log: {dist / 'grades' / name})"
    reference, blank = report[str(reference_path)].scores, report[str(blank_path)].scores
    assert sorted(reference) == sorted(questions)
    assert all(score == maximum > 0 for score, maximum in reference.values()), reference
    assert all(score == 0 for score, _ in blank.values()), blank
    blank_report = json.loads((dist / "grades" / name / f"001_{name}" / "results.json").read_text())
    public = next(t["output"] for t in blank_report["tests"] if t["name"] == "Public Tests")
    assert "❌" in public and "replace the ... with your code" in public, public


def _wrong_answers(name: str) -> list:
    """WRONG_ANSWERS[name] as a list of (text in the reference solution, wrong text, question it breaks)."""
    entry = WRONG_ANSWERS[name]
    return entry if isinstance(entry, list) else [entry]


def _with_wrong_answer(master_or_autograder: Path, name: str, case: tuple | None = None) -> dict:
    """The notebook JSON with one wrong answer (default: the first of WRONG_ANSWERS[name]) patched in."""
    old, new, _ = case or _wrong_answers(name)[0]
    notebook = json.loads(master_or_autograder.read_text())
    hits = 0
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        if old in source:
            cell["source"], hits = source.replace(old, new), hits + 1
    assert hits == 1, f"the wrong-answer patch for {name} must match exactly one cell"
    return notebook


def test_grading_one_wrong_answer_loses_exactly_that_questions_points(dist, tmp_path):
    name = "03_gradient_checking"  # four questions and the fastest notebook to execute
    master = ROOT / "notebooks" / f"{name}.ipynb"
    _, _, questions = _master_parts(master)
    wrong_path = tmp_path / "wrong" / master.name
    shutil.copytree(dist / name / "autograder", wrong_path.parent)
    wrong_path.write_text(json.dumps(_with_wrong_answer(wrong_path, name)))
    wrong = coursework.grade(name, [wrong_path], dist, debug=True)[str(wrong_path)].scores
    broken = _wrong_answers(name)[0][2]
    assert wrong[broken][0] == 0, wrong
    assert all(wrong[q][0] == wrong[q][1] > 0 for q in questions if q != broken), wrong


@pytest.mark.parametrize("master", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebooks_tests_catch_its_wrong_answer(master, dist):
    """Cheaper than grading a whole notebook: run the broken question's autograder tests (public and hidden)
    on the notebook's imports and that question's own code cells, with the wrong answer patched in."""
    name = master.stem
    survivors = [case for case in _wrong_answers(name) if _score_with_wrong_answer(master, dist, case) != 0]
    assert not survivors, f"{name}: these wrong answers still earn points: {survivors}"


def _score_with_wrong_answer(master: Path, dist: Path, case: tuple) -> float:
    from otter.test_files import ExceptionTestFile

    name, broken = master.stem, case[2]
    notebook = _with_wrong_answer(master, name, case)
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    environment: dict = {}
    exec("".join(code[1]["source"]), environment)  # the notebook's imports (code[0] installs in Colab only)
    parameters = [c for c in code if "parameters" in c["metadata"].get("tags", [])]
    exec("".join(parameters[0]["source"]) if parameters else "", environment)  # SEED, for seeded exercise data
    question, in_tests = None, False
    for cell in notebook["cells"]:
        source = "".join(cell["source"]).strip()
        if cell["cell_type"] == "raw":
            if source.startswith("# BEGIN QUESTION"):
                question = re.search(r"name:\s*(\S+)", source).group(1)
            elif source == "# END QUESTION":
                question = None
            elif source in ("# BEGIN TESTS", "# END TESTS"):
                in_tests = source == "# BEGIN TESTS"
        elif cell["cell_type"] == "code" and question == broken and not in_tests:
            exec(source, environment)
    test_file = ExceptionTestFile.from_file(str(dist / name / "autograder" / "tests" / f"{broken}.py"))
    test_file.run(environment)
    return test_file.score


def test_work_folder_holds_every_student_notebook_and_all_checks_and_never_overwrites_answers(dist, tmp_path):
    names = [p.stem for p in NOTEBOOKS]
    work = tmp_path / "work"
    copied = coursework.fill_work_folder(dist, names, work)
    assert sorted(p.name for p in copied) == sorted(f"{n}.ipynb" for n in names)
    for name in names:
        assert (work / f"{name}.ipynb").read_bytes() == (dist / name / "student" / f"{name}.ipynb").read_bytes()
        questions = _master_parts(ROOT / "notebooks" / f"{name}.ipynb")[2]
        assert all((work / "tests" / f"{q}.py").is_file() for q in questions), name
    answered = work / f"{names[0]}.ipynb"
    answered.write_text(answered.read_text().replace("...", "42", 1))
    assert coursework.fill_work_folder(dist, names, work) == []
    assert "42" in answered.read_text(), "a learner's notebook must never be overwritten"
