"""The train evaluator: metrics (checked against oracle models), budgets, pruning, seeding, weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from evaluators.base import EvalContext, EvaluationError, TrialPruned
from evaluators.data import load_dataset
from evaluators.train import TrainEvaluator
from automl.types import Task
from search_spaces.base import SearchSpace
from search_spaces.seg_unet import SegUNetSpace


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", limit=600)


def small_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 10)
    )


def context(data, **kw) -> EvalContext:
    return EvalContext(space=SearchSpace(), task=data.task, dataset=data, **kw)


class PixelOracle(nn.Module):
    """Predicts the class written in each input pixel (undoing the dataset's normalisation)."""

    def __init__(self, data, per_pixel: bool) -> None:
        super().__init__()
        self.mean, self.std = data.mean[0], data.std[0]
        self.num_classes, self.per_pixel = data.task.num_classes, per_pixel
        self.unused = nn.Parameter(torch.zeros(()))  # something for the optimizer; has no effect

    def forward(self, x):
        ids = torch.round((x[:, 0] * self.std + self.mean) * 255).long().clamp(0, self.num_classes - 1)
        if not self.per_pixel:
            ids = ids[:, 0, 0]
        logits = F.one_hot(ids, self.num_classes).float() * 10 + 0 * self.unused
        return logits.movedim(-1, 1) if self.per_pixel else logits


def test_classification_learns_and_reports_each_epoch(digits):
    reports = []
    ctx = context(digits, report=lambda step, value: reports.append((step, value)) and False)
    out = TrainEvaluator(epochs=2).evaluate({}, small_cnn(), ctx)
    assert set(out) == {"val_acc", "val_loss", "train_loss", "train_seconds", "epochs_run"}
    assert out["val_acc"] > 0.8 and out["epochs_run"] == 2 and out["train_seconds"] > 0
    assert [s for s, _ in reports] == [1, 2] and max(v for _, v in reports) == out["val_acc"]


def test_val_acc_is_top1_over_the_val_split(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 40)
    guesses = np.where(rng.random(40) < 0.6, labels, (labels + 1) % 4)  # what the oracle will answer
    images = np.repeat(guesses.astype(np.uint8)[:, None, None], 3, 1).repeat(3, 2)
    np.savez(tmp_path / "c.npz", images=images, labels=labels)
    data = load_dataset(f"npz:{tmp_path / 'c.npz'}", val_fraction=0.5)
    val = data.split_record()["val"]
    out = TrainEvaluator(epochs=1, batch_size=8).evaluate({}, PixelOracle(data, per_pixel=False), context(data))
    assert out["val_acc"] == pytest.approx(np.mean(guesses[val] == labels[val]))


def test_miou_and_pixel_acc_follow_the_confusion_matrix_with_ignore(tmp_path):
    rng = np.random.default_rng(1)
    masks = rng.integers(0, 3, (16, 6, 6))
    guesses = np.where(rng.random(masks.shape) < 0.7, masks, rng.integers(0, 4, masks.shape))  # class 3 only guessed
    masks[:, :2] = 255  # ignored rows: their (random) guesses must not count
    np.savez(tmp_path / "s.npz", images=guesses.astype(np.uint8), masks=masks, ignore_index=255,
             class_names=np.array(["a", "b", "c", "d"]))
    data = load_dataset(f"npz:{tmp_path / 's.npz'}", val_fraction=0.5)
    out = TrainEvaluator(epochs=1, batch_size=4).evaluate({}, PixelOracle(data, per_pixel=True), context(data))
    val = data.split_record()["val"]
    truth, pred = masks[val].ravel(), guesses[val].ravel()
    keep = truth != 255
    truth, pred = truth[keep], pred[keep]
    ious = []
    for c in range(4):
        inter, union = np.sum((truth == c) & (pred == c)), np.sum((truth == c) | (pred == c))
        if union:
            ious.append(inter / union)
    assert out["val_pixel_acc"] == pytest.approx(np.mean(truth == pred))
    assert out["val_miou"] == pytest.approx(np.mean(ious))
    assert len(ious) == 4  # class 3 was predicted, never true: IoU 0 still counts


def test_segmentation_on_shapes_with_seg_unet():
    data = load_dataset("shapes", num_samples=32)
    space = SegUNetSpace()
    torch.manual_seed(0)
    arch = {**space.preset("unet"), "depth": 2, "width": 8, "block1": "sep_conv", "block2": "dil_conv"}
    model = space.build(arch, data.task)
    out = TrainEvaluator(epochs=1, batch_size=8).evaluate({}, model, context(data))
    assert {"val_miou", "val_pixel_acc", "val_loss"} <= set(out) and "val_acc" not in out
    assert 0 <= out["val_miou"] <= out["val_pixel_acc"] <= 1


def test_low_resolution_logits_are_resized():
    data = load_dataset("shapes", num_samples=16, image_size=(15, 15))
    torch.manual_seed(0)
    model = nn.Conv2d(3, 5, 3, stride=2, padding=1)  # 8x8 logits for 15x15 masks
    out = TrainEvaluator(epochs=1, batch_size=4).evaluate({}, model, context(data))
    assert 0 <= out["val_miou"] <= 1


def test_same_seed_same_metrics_other_seed_other_metrics(digits):
    def run(seed):
        out = TrainEvaluator(epochs=1, batch_size=32).evaluate({}, small_cnn(), context(digits, seed=seed))
        out.pop("train_seconds")
        return out

    assert run(5) == run(5)
    assert run(5)["train_loss"] != run(6)["train_loss"]


class Recorder(nn.Module):
    """A small segmentation net that keeps every batch it is fed, with the mode it was in."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 5, 1))
        self.fed: list[tuple[bool, torch.Tensor]] = []

    def forward(self, x):
        self.fed.append((self.training, x.detach().clone(memory_format=torch.preserve_format)))
        return self.body(x)


def test_channels_last_on_cpu_feeds_nhwc_reproducibly_and_leaves_the_model_contiguous():
    data = load_dataset("shapes", num_samples=24)

    def run(channels_last: bool) -> tuple[dict[str, float], list[bool]]:
        model = Recorder()
        out = TrainEvaluator(epochs=2, batch_size=8, channels_last=channels_last).evaluate({}, model, context(data))
        assert all(p.is_contiguous() for p in model.parameters())
        out.pop("train_seconds")
        return out, [x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() for _, x in model.fed]

    nhwc, fed = run(True)
    assert fed and all(fed)  # every training and validation batch
    assert run(True)[0] == nhwc  # a seed gives the same metrics in this layout
    assert not any(run(False)[1])


def test_augment_flip_and_full_transform_training_batches_only():
    data = load_dataset("shapes", num_samples=24)

    def run(augment: str) -> tuple[list[torch.Tensor], list[torch.Tensor], dict[str, float]]:
        model = Recorder()
        out = TrainEvaluator(epochs=1, batch_size=8, augment=augment).evaluate({}, model, context(data))
        out.pop("train_seconds")
        return [x for t, x in model.fed if t], [x for t, x in model.fed if not t], out

    plain_train, plain_val, _ = run("off")
    flipped_train, flipped_val, flipped = run("flip")
    for plain, flipped_batch in zip(plain_train, flipped_train, strict=True):  # same batches, some mirrored
        assert all(torch.equal(f, p) or torch.equal(f, p.flip(-1)) for p, f in zip(plain, flipped_batch, strict=True))
    assert any(not torch.equal(p, f) for p, f in zip(plain_train, flipped_train))
    assert all(torch.equal(p, f) for p, f in zip(plain_val, flipped_val, strict=True))  # validation untouched
    assert run("flip")[2] == flipped  # seeded
    full_train, full_val, _ = run("full")  # scale + crop + flip: not a mirror of the batch
    assert any(not (torch.equal(f, p) or torch.equal(f, p.flip(-1)))
               for plain, full in zip(plain_train, full_train) for p, f in zip(plain, full))
    assert all(torch.equal(p, f) for p, f in zip(plain_val, full_val, strict=True))
    assert TrainEvaluator(augment=True).augment == "full" and TrainEvaluator(augment=False).augment == "off"


def test_augment_flip_is_refused_for_video_and_optimizers_are_fused_on_the_cpu():
    video = Task(kind="video", in_channels=3, input_size=(4, 8, 8), num_classes=3)
    with pytest.raises(ValueError, match="augment 'flip' would mirror clips.*accepted for video: off, full"):
        TrainEvaluator(augment="flip").setup(SearchSpace(), video)
    TrainEvaluator(augment="full").setup(SearchSpace(), video)
    for name in ("sgd", "adamw"):
        optimizer = TrainEvaluator(optimizer=name)._make_optimizer(small_cnn())
        assert optimizer.defaults["fused"] is True
    half = small_cnn().to(torch.bfloat16)
    assert TrainEvaluator()._make_optimizer(half).defaults["fused"] is True
    mixed = small_cnn()
    mixed[0].weight.data = mixed[0].weight.data.double()
    assert TrainEvaluator()._make_optimizer(mixed).defaults["fused"] is True  # dtypes may differ; devices may not


def test_pruning_stops_after_the_reporting_epoch(digits):
    calls = []

    def report(step, value):
        calls.append(step)
        return step == 2

    with pytest.raises(TrialPruned, match="epoch 2"):
        TrainEvaluator(epochs=5).evaluate({}, small_cnn(), context(digits, report=report))
    assert calls == [1, 2]


def count_training_forwards(model: nn.Module) -> list[int]:
    counter = [0]
    model.register_forward_pre_hook(lambda m, _: counter.__setitem__(0, counter[0] + m.training))
    return counter


def test_steps_budget(digits):
    model = small_cnn()
    counter = count_training_forwards(model)
    out = TrainEvaluator(steps=5, batch_size=32).evaluate({}, model, context(digits))
    assert counter[0] == 5 and out["epochs_run"] == 1
    model = small_cnn()
    counter = count_training_forwards(model)
    out = TrainEvaluator(steps=20, batch_size=32).evaluate({}, model, context(digits))  # 15 steps per epoch
    assert counter[0] == 20 and out["epochs_run"] == 2


def test_seconds_budget_stops_an_open_ended_run(digits):
    out = TrainEvaluator(seconds=0.3, batch_size=32).evaluate({}, small_cnn(), context(digits))
    assert out["epochs_run"] >= 1 and out["train_seconds"] < 5


def test_best_weights_are_saved_and_left_in_the_model(digits, tmp_path):
    model = small_cnn()
    ctx = context(digits, run_dir=tmp_path, trial_number=7)
    out = TrainEvaluator(epochs=3, save_weights=True, lr=0.2).evaluate({}, model, ctx)
    path = tmp_path / "trials" / "00007" / "weights.pt"
    state = torch.load(path, weights_only=True)
    fresh = small_cnn(seed=1)
    fresh.load_state_dict(state)
    fresh.eval()
    assert not model.training
    x, y = digits.tensors("val")
    with torch.no_grad():
        acc = (fresh(x).argmax(1) == y).double().mean().item()
        torch.testing.assert_close(fresh(x), model(x))
    assert acc == pytest.approx(out["val_acc"])


def test_select_last_and_tensorboard_curves(digits):
    class Writer:
        def __init__(self):
            self.scalars = []

        def add_scalar(self, tag, value, step):
            self.scalars.append((tag, step))

    writer = Writer()
    reports = []
    ctx = context(digits, writer=writer, report=lambda s, v: reports.append(v) and False)
    out = TrainEvaluator(epochs=2, select="last").evaluate({}, small_cnn(), ctx)
    assert out["val_acc"] == reports[-1]
    assert sorted(set(writer.scalars)) == sorted(
        (tag, step) for tag in ("train/loss", "train/lr", "val/acc", "val/loss") for step in (1, 2)
    )


def test_adamw_smoothing_warmup_clip_constant(digits):
    ev = TrainEvaluator(
        epochs=2, optimizer="adamw", label_smoothing=0.1, warmup_epochs=0.5, grad_clip=1.0, schedule="constant"
    )
    assert ev.lr == 1e-3 and ev.weight_decay == 0.01
    assert TrainEvaluator(epochs=2, optimizer="adamw", lr=1e-2).evaluate({}, small_cnn(), context(digits))["val_acc"] > 0.5
    assert 0 <= ev.evaluate({}, small_cnn(), context(digits))["val_acc"] <= 1


def test_lr_schedule_is_cosine_over_the_budget():
    ev = TrainEvaluator(epochs=1)
    factors = [ev._lr_factor(step, 0.0, 10, 0, None) for step in range(11)]
    assert factors[0] == 1.0 and factors[5] == pytest.approx(0.5) and factors[10] == pytest.approx(0.0)
    assert all(a >= b for a, b in zip(factors, factors[1:]))
    warm = TrainEvaluator(epochs=1, warmup_epochs=1)
    assert warm._lr_factor(0, 0.0, 10, 4, None) == 0.25 and warm._lr_factor(3, 0.0, 10, 4, None) == 1.0
    timed = TrainEvaluator(seconds=2.0)
    assert timed._lr_factor(3, 1.0, 0, 0, 2.0) == pytest.approx(0.5)
    assert timed._lr_factor(3, 1.0, 10, 0, 2.0) == pytest.approx(0.5)  # time ahead of steps (3 of 10)


def test_errors_name_the_problem(digits):
    with pytest.raises(EvaluationError, match="ctx.dataset is not set"):
        TrainEvaluator().evaluate({}, small_cnn(), EvalContext(space=SearchSpace(), task=digits.task))
    with pytest.raises(EvaluationError, match=r"model output \[64, 7\] but the dataset needs \[N, 10\]"):
        TrainEvaluator().evaluate({}, nn.Sequential(nn.Flatten(), nn.Linear(64, 7)), context(digits))
    ctx = EvalContext(space=SearchSpace(), task=Task(kind="segmentation"), dataset=digits)
    with pytest.raises(EvaluationError, match="the task is segmentation but dataset 'digits' is classification"):
        TrainEvaluator().evaluate({}, small_cnn(), ctx)

    class Diverges(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(64, 10)

        def forward(self, x):
            return self.lin(x.flatten(1)) * float("nan")

    with pytest.raises(EvaluationError, match="diverged"):
        TrainEvaluator().evaluate({}, Diverges(), context(digits))


@pytest.mark.parametrize(
    "options,error,message",
    [
        ({"epoch": 2}, TypeError, r"no option \['epoch'\]; options: epochs, steps"),
        ({"epochs": 0}, ValueError, "epochs must be an integer >= 1"),
        ({"steps": 2.5}, ValueError, "steps must be an integer"),
        ({"seconds": 0}, ValueError, r"seconds must be a number in \(0"),
        ({"optimizer": "adam"}, ValueError, "optimizer must be one of sgd, adamw, got 'adam'"),
        ({"lr": -1}, ValueError, "lr must be a number"),
        ({"momentum": 1.0}, ValueError, r"momentum must be a number in \[0, 1\)"),
        ({"label_smoothing": 1.5}, ValueError, "label_smoothing"),
        ({"amp": "fp8"}, ValueError, "amp must be one of auto, bf16, fp16, off"),
        ({"select": "worst"}, ValueError, "select must be one of best, last"),
        ({"save_weights": "yes"}, TypeError, "save_weights must be true or false"),
        ({"batch_size": 0}, ValueError, "batch_size must be an integer >= 1"),
        ({"schedule": "step"}, ValueError, "schedule must be one of cosine, constant"),
        ({"augment": "mirror"}, ValueError, "augment must be one of off, flip, full, got 'mirror'"),
    ],
)
def test_option_errors(options, error, message):
    with pytest.raises(error, match=message) as exc:
        TrainEvaluator(**options)
    assert "\n" not in str(exc.value)


def test_class_attributes():
    assert TrainEvaluator.name == "train" and TrainEvaluator.needs_model
    assert {"val_acc", "val_miou", "val_pixel_acc", "train_seconds"} <= set(TrainEvaluator.provides)
    assert TrainEvaluator(amp=True).amp == "auto" and TrainEvaluator().amp == "off" and TrainEvaluator().epochs == 1
    assert TrainEvaluator(steps=3).epochs is None


def test_a_held_out_test_part_is_scored_once_with_the_selected_weights():
    from evaluators.data.dataset import build_dataset

    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, 40)
    test_labels = rng.integers(0, 4, 20)
    test_guesses = np.where(rng.random(20) < 0.5, test_labels, (test_labels + 1) % 4)
    as_images = lambda ids: np.repeat(ids.astype(np.uint8)[:, None, None, None], 3, 1).repeat(3, 2).repeat(1, 3)
    data = build_dataset("toy", "classification", as_images(labels), labels, num_classes=4, val_fraction=0.5,
                         test=(as_images(test_guesses), test_labels))
    assert data.parts == ("train", "val", "test")
    out = TrainEvaluator(epochs=1, batch_size=8).evaluate({}, PixelOracle(data, per_pixel=False), context(data))
    assert out["val_acc"] == 1.0  # train/val images carry their labels
    assert out["test_acc"] == pytest.approx(np.mean(test_guesses == test_labels)) and out["test_acc"] < 1.0
    assert {"test_loss", "test_acc"} <= set(TrainEvaluator.provides)


def test_a_deadline_caps_the_budget_and_matched_epochs_replace_it(digits):
    import time

    ev = TrainEvaluator(epochs=40, batch_size=64)
    late = context(digits)
    late.deadline = time.time()  # already reached: one step, then the validation
    m = ev.evaluate({}, small_cnn(), late)
    assert m["epochs_run"] == 1 and 0 <= m["val_acc"] <= 1
    assert TrainEvaluator(seconds=100, batch_size=64).evaluate({}, small_cnn(), late)["epochs_run"] == 1
    matched = context(digits)
    matched.epochs, matched.deadline = 2, time.time()  # a reference: exactly its epochs, no deadline
    assert TrainEvaluator(steps=1, seconds=0.001, batch_size=64).evaluate({}, small_cnn(), matched)["epochs_run"] == 2


def test_under_a_deadline_the_epochs_that_fit_are_planned_once_and_repeat_exactly(digits, monkeypatch):
    import itertools
    import time

    far = context(digits)
    far.deadline = time.time() + 3600  # not binding: the same numbers as without a limit
    assert TrainEvaluator(epochs=2, batch_size=64).evaluate({}, small_cnn(), far)["val_loss"] == \
        TrainEvaluator(epochs=2, batch_size=64).evaluate({}, small_cnn(), context(digits))["val_loss"]

    def run() -> dict[str, float]:
        clock = itertools.count()  # every perf_counter call: one more "second"
        monkeypatch.setattr("evaluators.train.time.perf_counter", lambda: float(next(clock)))
        ctx = context(digits)
        ctx.deadline = time.time() + 25
        out = TrainEvaluator(epochs=40, batch_size=64).evaluate({}, small_cnn(), ctx)
        monkeypatch.undo()
        return out

    first, again = run(), run()
    assert 1 < first["epochs_run"] < 40  # as many whole epochs as the first one's time allows
    assert {k: v for k, v in first.items() if k != "train_seconds"} == \
        {k: v for k, v in again.items() if k != "train_seconds"}
