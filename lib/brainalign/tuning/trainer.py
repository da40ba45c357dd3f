"""The brain-tuning trainer: LoRA + one shared head, participants in turn, checkpointed in the cache and resumable."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import models
from ..cache import Cache, atomic_write
from ..config import release_memory
from .data import TuningData
from .net import AVTuningNet, TuningNet, av_lora_config, lora_config

log = logging.getLogger(__name__)

#: bump when a tuning run's numbers change for the same parameters (3: the frozen prefix through float16, micro-batches;
#: 4: the audio-video model's encoders read the frozen prefix in evaluation mode)
TUNING_VERSION = 4
#: how the participants' losses are combined
STRATEGIES = ("in_turn", "mean_loss")


# -- the trainer ----------------------------------------------------------------------------------


class BrainTuner:
    """Brain-tune a speech or audio-video model on one or several participants (LoRA + one shared linear head).

    Parameters
    ----------
    model : str, default="whisper-tiny-en"
        A speech model of :data:`models.MODELS` (``wav2vec2-base-960h``, ``hubert-base-ls960`` online),
        or the audio-video model ``"whisper-efficientnet-fusion"``: its fusion layers get the adapters
        (:class:`AVTuningNet`, :func:`av_lora_config`; the encoders stay frozen), and the data need video.
    rank, alpha, dropout : int, float, float, default=8, 32, 0.1
        LoRA settings (:func:`lora_config`).
    lr : float, default=1e-4
        AdamW learning rate of the adapters.
    head_lr : float or None, default=None
        Learning rate of the head (None: ``lr``).
    weight_decay : float, default=0.01
        AdamW weight decay.
    batch_size : int, default=8
        Windows per stimulus batch.
    max_epochs : int, default=30
    warmup : float, default=0.1
        Fraction of the planned steps with a linear warm-up; then linear decay to 0.
    patience : int, default=3
        Epochs without a lower validation loss before stopping.
    strategy : {"in_turn", "mean_loss"}, default="in_turn"
        Participants' losses back-propagated one after the other (one optimiser
        step each) or averaged (one step per batch).
    lora_layers : int or None, default=None
        Adapt only the last ``lora_layers`` transformer blocks (fusion layers
        of an audio-video model; None: all, as the study). The blocks below are then frozen too: their output is
        computed once per window, without gradients, which makes an epoch
        cheaper (a scaled-down run on a CPU).
    train_fraction : float, default=1.0
        Fraction of the training TRs used per epoch (every k-th TR; 1: all).
    micro_batch : int, default=8
        Windows per forward and backward pass: a batch's gradients are summed
        over its micro-batches, so memory grows with ``micro_batch``, not
        ``batch_size`` (the step is that of the whole batch); the validation
        loss is computed in micro-batches too.
    checkpoint_every : int, default=20
        Batches between checkpoints (and one after every epoch).
    keep_prefix_gb : float, default=4.0
        Keep the frozen blocks' output of every window in memory (in float16,
        half the size) when it needs at most this many GB (else it is
        recomputed for every batch; the result is the same).
    seed : int, default=0
    device : str, default="cpu"
    cache : bool, default=True
        Save checkpoints and the result in the cache (resume, and no retraining).
    cache_dir : path, optional
        Where (default: the library's cache, ``config.cache_dir()``).
    progress : bool, default=True
        tqdm progress bars.

    Attributes
    ----------
    net_ : torch.nn.Module
        The tuned model (best validation epoch) with its head.
    subjects_ : list of str
        The tuning participants, in the order their losses are taken.
    history_ : DataFrame
        One row per optimiser step: epoch, batch, subject (``"mean"`` for
        ``mean_loss``), loss, lr; and per epoch ``val_loss`` in ``epochs_``.
    epochs_ : DataFrame
        epoch, train_loss, val_loss.
    best_epoch_ : int
    mean_val_loss_ : float
        Validation loss of predicting every voxel's training mean: what tuning has to beat.
    key_ : str
        The run's cache key (part of the tuned model's revision).
    resumed_ : bool
        Whether training restarted from a checkpoint; ``from_cache_`` whether
        a finished run was read back.
    train_seconds_ : float
        Seconds spent training in this call.
    """

    def __init__(self, model: str = "whisper-tiny-en", rank: int = 8, alpha: float = 32, dropout: float = 0.1, lr: float = 1e-4,
                 head_lr: float | None = None, weight_decay: float = 0.01, batch_size: int = 8, max_epochs: int = 30,
                 warmup: float = 0.1, patience: int = 3, strategy: str = "in_turn", lora_layers: int | None = None,
                 train_fraction: float = 1.0, micro_batch: int = 8, checkpoint_every: int = 20, keep_prefix_gb: float = 4.0,
                 seed: int = 0, device: str = "cpu", cache: bool = True, cache_dir: str | Path | None = None,
                 progress: bool = True) -> None:
        self.model = model
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout
        self.lr = lr
        self.head_lr = head_lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.warmup = warmup
        self.patience = patience
        self.strategy = strategy
        self.lora_layers = lora_layers
        self.train_fraction = train_fraction
        self.micro_batch = micro_batch
        self.checkpoint_every = checkpoint_every
        self.keep_prefix_gb = keep_prefix_gb
        self.seed = seed
        self.device = device
        self.cache = cache
        self.cache_dir = cache_dir
        self.progress = progress

    # -- parameters ---------------------------------------------------------
    _KEY_PARAMS = ("rank", "alpha", "dropout", "lr", "head_lr", "weight_decay", "batch_size", "max_epochs", "warmup",
                   "patience", "strategy", "lora_layers", "train_fraction", "micro_batch", "seed")

    def get_params(self, deep: bool = True) -> dict:
        names = ("model", *self._KEY_PARAMS, "checkpoint_every", "keep_prefix_gb", "device", "cache", "cache_dir", "progress")
        return {n: getattr(self, n) for n in names}

    def _validate(self) -> models.ModelSpec:
        spec = models.resolve(self.model)  # unknown names: a ValueError listing the valid ones
        if spec.kind not in ("speech", "audio-video") or (spec.kind == "audio-video" and spec.name != "whisper-efficientnet-fusion"):
            raise ValueError(f"model {self.model!r} is a {spec.kind} model; brain-tuning reads speech models "
                             f"({', '.join(models.model_names('speech'))}) or 'whisper-efficientnet-fusion'")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; valid: {list(STRATEGIES)}")
        if self.lora_layers is not None and not 1 <= int(self.lora_layers) <= spec.n_layers:
            raise ValueError(f"lora_layers={self.lora_layers!r}: {spec.name} has {spec.n_layers} blocks; "
                             f"give 1..{spec.n_layers} or None (all)")
        for name in ("batch_size", "micro_batch", "max_epochs", "patience", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not 0 <= float(self.warmup) < 1:
            raise ValueError(f"warmup must be in [0, 1), got {self.warmup!r}")
        if not 0 < float(self.train_fraction) <= 1:
            raise ValueError(f"train_fraction must be in (0, 1], got {self.train_fraction!r}")
        if not (float(self.lr) > 0 and (self.head_lr is None or float(self.head_lr) > 0)):
            raise ValueError(f"lr={self.lr!r} and head_lr={self.head_lr!r} must be positive")
        return spec

    # -- fitting ------------------------------------------------------------
    def fit(self, data: TuningData, train_runs: Sequence[str], val_runs: Sequence[str], refit: bool = False) -> BrainTuner:
        """Tune on ``train_runs``, stopping early on the loss of ``val_runs``.

        Parameters
        ----------
        data : TuningData
            Windows and responses; every subject of ``data`` is a tuning participant.
        train_runs, val_runs : sequence of str
            Disjoint, non-empty runs of ``data``.
        refit : bool
            Ignore the cache's finished run and checkpoints and train anew.

        Returns
        -------
        self
        """
        spec = self._validate()
        train_runs, val_runs = list(train_runs), list(val_runs)
        for r in train_runs + val_runs:
            if r not in data.runs:
                raise ValueError(f"unknown run {r!r}; valid: {data.runs}")
        if not train_runs or not val_runs or set(train_runs) & set(val_runs):
            raise ValueError(f"train_runs {train_runs} and val_runs {val_runs} must be non-empty and disjoint")
        if spec.kind == "audio-video" and data.video is None:
            raise ValueError(f"{spec.name} is an audio-video model: tune it on data with video (tuning_data(..., video=True))")
        lm = models.load_model(spec, device=self.device)
        self.subjects_ = list(data.subjects)
        self.train_runs_, self.val_runs_ = train_runs, val_runs
        # z-score each participant's voxels with the training runs' statistics
        self.y_mean_, self.y_scale_ = {}, {}
        for s in self.subjects_:
            y = np.concatenate([data.responses[s][r] for r in train_runs])
            self.y_mean_[s] = y.mean(0)
            self.y_scale_[s] = np.where(y.std(0) > 1e-8, y.std(0), 1.0)
        self.key_ = Cache.key("brain_tuning", TUNING_VERSION, {
            "model": lm.spec.name, "revision": lm.revision, "params": {n: getattr(self, n) for n in self._KEY_PARAMS},
            "subjects": self.subjects_, "train_runs": train_runs, "val_runs": val_runs, "data": data.digest()})
        self._dir = Cache(self.cache_dir).root / "brain_tuning" / self.key_
        self.base_revision_ = lm.revision
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.seed))
            if spec.kind == "audio-video":
                n = len(lm.model.layers)
                if self.lora_layers is not None and int(self.lora_layers) > n:
                    raise ValueError(f"lora_layers={self.lora_layers!r}: {spec.name} has {n} fusion layers; "
                                     f"give 1..{n} or None (all)")
                first = 0 if self.lora_layers is None else n - int(self.lora_layers)
                config = av_lora_config(self.rank, self.alpha, self.dropout, None if first == 0 else range(first, n))
                # the frames' states go to the library's cache when the run does (a run given its own cache_dir
                # keeps the library's cache untouched)
                frame_cache = bool(self.cache) and self.cache_dir is None
                self.net_ = AVTuningNet(lm, data.n_voxels, config, cache=frame_cache).to(self.device)
            else:
                first = 0 if self.lora_layers is None else lm.spec.n_layers - int(self.lora_layers)
                config = lora_config(self.rank, self.alpha, self.dropout, None if first == 0 else range(first, lm.spec.n_layers))
                self.net_ = TuningNet(lm, data.n_voxels, config, first).to(self.device)
            self._store, self._slots, self._keep = None, {}, None
            self._train(data, refit)
        self._store, self._slots = None, {}  # only training reads them
        release_memory()  # the activations' freed heap, hundreds of MB
        self.net_.eval()
        return self

    def _rows(self, data: TuningData, runs: list[str], every: int) -> list[tuple[str, int]]:
        return [(r, i) for r in runs for i in range(0, len(data.bounds[r][0]), every)]

    def _targets(self, data: TuningData, s: str, batch: list[tuple[str, int]]) -> torch.Tensor:
        y = np.stack([data.responses[s][r][i] for r, i in batch])
        return torch.from_numpy(((y - self.y_mean_[s]) / self.y_scale_[s]).astype(np.float32)).to(self.device)

    def _prefix(self, data: TuningData, batch: list[tuple[str, int]]) -> torch.Tensor:
        """The frozen blocks' output for a batch of windows, through float16 (kept in memory when it fits).

        Kept windows fill one block allocated once for every window of the
        training and validation runs (pages are taken as they are written),
        not one small tensor each: freed at the end of training, the block
        goes back to the system whole instead of leaving the heap fragmented.
        """
        missing = [key for key in batch if key not in self._slots]
        if missing:  # in chunks of 8 windows: the frozen blocks' transient memory stays small
            states = torch.cat([self.net_.window_prefix(data, missing[k : k + 8]).half() for k in range(0, len(missing), 8)])
            if self._keep is None:  # decide once, from the size of one window's state
                n_windows = sum(len(data.bounds[r][0]) for r in self.train_runs_ + self.val_runs_)
                self._keep = states[0].numel() * states.element_size() * n_windows <= float(self.keep_prefix_gb) * 1e9
                if self._keep:
                    self._store = torch.empty((n_windows, *states.shape[1:]), dtype=states.dtype, device=states.device)
            if not self._keep:
                return states.float()
            slots = list(range(len(self._slots), len(self._slots) + len(missing)))
            self._store[slots] = states
            self._slots.update(zip(missing, slots))
        return self._store[[self._slots[key] for key in batch]].float()

    def _val_loss(self, data: TuningData, mean_only: bool = False) -> float:
        """Validation MSE (z-scored responses, mean over participants); ``mean_only``: of the training mean (zeros)."""
        rows = self._rows(data, self.val_runs_, 1)
        self.net_.eval()
        total = {s: 0.0 for s in self.subjects_}
        with torch.no_grad():
            for k in range(0, len(rows), int(self.micro_batch)):
                batch = rows[k : k + int(self.micro_batch)]
                pred = torch.zeros(len(batch), data.n_voxels) if mean_only else self.net_(self._prefix(data, batch))
                for s in self.subjects_:
                    total[s] += float(torch.nn.functional.mse_loss(pred, self._targets(data, s, batch), reduction="sum"))
        self.net_.train()
        return float(np.mean([v / (len(rows) * data.n_voxels) for v in total.values()]))

    def _state(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in self.net_.trainable().items()}

    def _load_state(self, state: Mapping[str, torch.Tensor]) -> None:
        params = self.net_.trainable()
        with torch.no_grad():
            for n, v in state.items():
                params[n].copy_(v)

    def _save(self, name: str, obj: dict) -> None:
        if self.cache:
            atomic_write(self._dir / name, lambda tmp: torch.save(obj, tmp))

    def _train_batch(self, data: TuningData, batch: list[tuple[str, int]], opt, sched) -> list[tuple[str, float, float]]:
        """One stimulus batch: per participant in turn (one step each) or one step on the mean loss.

        Each step's loss is the batch's mean squared error, its gradient summed over micro-batches.
        """
        prefix, out = self._prefix(data, batch), []  # one stimulus batch, shared by the participants
        size = int(self.micro_batch)
        parts = [slice(k, k + size) for k in range(0, len(batch), size)]
        steps = [(s, [s]) for s in self.subjects_] if self.strategy == "in_turn" else [("mean", self.subjects_)]
        for label, subjects in steps:
            targets = {s: self._targets(data, s, batch) for s in subjects}
            opt.zero_grad(set_to_none=True)
            total = 0.0
            for part in parts:
                pred = self.net_(prefix[part])
                loss = torch.stack([torch.nn.functional.mse_loss(pred, targets[s][part]) for s in subjects]).mean()
                loss = loss * (len(pred) / len(batch))  # the batch's mean, summed over its micro-batches
                loss.backward()
                total += float(loss.detach())
            opt.step()
            out.append((label, total, sched.get_last_lr()[0]))
            sched.step()
        return out

    def _train(self, data: TuningData, refit: bool) -> None:
        from tqdm.auto import tqdm

        t0 = time.time()
        self.resumed_ = self.from_cache_ = False
        final, ckpt = self._dir / "final.pt", self._dir / "checkpoint.pt"
        if self.cache and not refit and final.exists():
            try:
                saved = torch.load(final, weights_only=False)
                self._load_state(saved["best"])
                self._finish(saved, time.time() - t0)
                self.from_cache_ = True
                return
            except Exception as err:  # a corrupt file is retrained, never trusted
                log.warning("brain-tuning result %s is unreadable (%s); retraining", final, err)
        every = max(1, int(round(1 / float(self.train_fraction))))
        rows = self._rows(data, self.train_runs_, every)
        n_batches = -(-len(rows) // int(self.batch_size))
        steps_per_batch = len(self.subjects_) if self.strategy == "in_turn" else 1
        total = int(self.max_epochs) * n_batches * steps_per_batch
        warm = int(round(float(self.warmup) * total))
        head = list(self.net_.head.parameters())
        adapters = [p for n, p in self.net_.trainable().items() if not n.startswith("head.")]
        opt = torch.optim.AdamW([{"params": adapters, "lr": float(self.lr)},
                                 {"params": head, "lr": float(self.head_lr or self.lr)}], weight_decay=float(self.weight_decay))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda k: (k + 1) / max(1, warm) if k < warm else max(0.0, (total - k) / (total - warm + 1)))
        state = {"epoch": 0, "batch": 0, "history": [], "epochs": [], "best_val": np.inf, "best": None, "best_epoch": -1,
                 "bad_epochs": 0, "mean_val": np.nan}
        if self.cache and not refit and ckpt.exists():
            try:
                saved = torch.load(ckpt, weights_only=False)
                self._load_state(saved["params"])
                opt.load_state_dict(saved["optimizer"])
                sched.load_state_dict(saved["scheduler"])
                torch.set_rng_state(saved["torch_rng"])
                state = saved["state"]
                self.resumed_ = True
                log.info("brain-tuning resumes at epoch %d, batch %d", state["epoch"], state["batch"])
            except Exception as err:
                log.warning("checkpoint %s is unreadable (%s); starting over", ckpt, err)
        if not self.resumed_:
            state["mean_val"] = self._val_loss(data, mean_only=True)  # what tuning has to beat

        def checkpoint() -> None:
            self._save("checkpoint.pt", {"params": self._state(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                                         "torch_rng": torch.get_rng_state(), "state": copy.deepcopy(state)})

        self.net_.train()
        bar = tqdm(total=int(self.max_epochs) * n_batches, initial=state["epoch"] * n_batches + state["batch"],
                   desc=f"brain-tuning ({len(self.subjects_)} participant{'s' * (len(self.subjects_) > 1)})",
                   disable=not self.progress, leave=False)
        while state["epoch"] < int(self.max_epochs) and state["bad_epochs"] < int(self.patience):
            order = np.random.default_rng([int(self.seed), state["epoch"]]).permutation(len(rows))
            for b in range(state["batch"], n_batches):
                batch = [rows[i] for i in order[b * int(self.batch_size) : (b + 1) * int(self.batch_size)]]
                for s, loss, lr in self._train_batch(data, batch, opt, sched):
                    state["history"].append({"epoch": state["epoch"], "batch": b, "subject": s, "loss": loss, "lr": lr})
                state["batch"] = b + 1
                bar.update(1)
                bar.set_postfix(loss=f"{state['history'][-1]['loss']:.3f}")
                if state["batch"] % int(self.checkpoint_every) == 0 and state["batch"] < n_batches:
                    checkpoint()
            val = self._val_loss(data)
            losses = [h["loss"] for h in state["history"] if h["epoch"] == state["epoch"]]
            state["epochs"].append({"epoch": state["epoch"], "train_loss": float(np.mean(losses)), "val_loss": val})
            if val < state["best_val"]:
                state.update(best_val=val, best=self._state(), best_epoch=state["epoch"], bad_epochs=0)
            else:
                state["bad_epochs"] += 1
            state["epoch"] += 1
            state["batch"] = 0
            checkpoint()
        bar.close()
        self._load_state(state["best"])
        result = {"best": state["best"], "history": state["history"], "epochs": state["epochs"], "best_epoch": state["best_epoch"],
                  "mean_val": state["mean_val"]}
        self._save("final.pt", result)
        if self.cache:
            ckpt.unlink(missing_ok=True)
        self._finish(result, time.time() - t0)

    def _finish(self, result: dict, seconds: float) -> None:
        self.history_ = pd.DataFrame(result["history"], columns=["epoch", "batch", "subject", "loss", "lr"])
        self.epochs_ = pd.DataFrame(result["epochs"], columns=["epoch", "train_loss", "val_loss"])
        self.best_epoch_ = int(result["best_epoch"])
        self.mean_val_loss_ = float(result["mean_val"])
        self.train_seconds_ = float(seconds)

    # -- using the tuned model ------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise RuntimeError("this BrainTuner is not fitted yet; call fit(data, train_runs, val_runs) first")

    def predict(self, clips: list[np.ndarray], subject: str | None = None) -> np.ndarray:
        """The head's prediction for audio windows, in the responses' units.

        Parameters
        ----------
        clips : list of float32 arrays of shape (window_samples,), at 16 kHz
        subject : str, optional
            Undo this participant's z-scoring (default: z-scores).

        Returns
        -------
        ndarray of shape (n_clips, n_voxels)
        """
        self._check_fitted()
        if isinstance(self.net_, AVTuningNet):
            raise ValueError("predict reads audio clips; a tuned audio-video model's predictions need its windows' video: "
                             "use tuned_model() and its features")
        with torch.no_grad():
            z = self.net_(self.net_.prefix(clips)).cpu().numpy()
        if subject is None:
            return z
        if subject not in self.subjects_:
            raise ValueError(f"unknown subject {subject!r}; tuned on {self.subjects_}")
        return z * self.y_scale_[subject] + self.y_mean_[subject]

    def tuned_model(self) -> models.LoadedModel:
        """The tuned model with the adapters merged, for :func:`features.speech_tr_features` (or
        :func:`movie_features.av_tr_features` for the audio-video model).

        Returns
        -------
        models.LoadedModel
            A fresh copy in eval mode; its ``revision`` names this tuning run
            (so its features are cached apart from the pretrained model's).
        """
        self._check_fitted()
        net = copy.deepcopy(self.net_)
        merged = net.peft.merge_and_unload()
        merged.eval()
        lm = net.lm
        return models.LoadedModel(spec=lm.spec, tokenizer=lm.tokenizer, model=merged, source=lm.source,
                                  revision=f"{self.base_revision_}+braintuned-{self.key_[:16]}")

    def ridge_reference(self, features: Mapping[str, np.ndarray], responses: Mapping[str, Mapping[str, np.ndarray]],
                        penalties: Sequence[float] = (1e1, 1e2, 1e3, 1e4)) -> dict[float, float]:
        """What a linear readout of frozen features reaches on this run's validation runs, in the tuner's unit.

        One ridge map (:class:`brainalign.encoding.RidgeEncoder`, no delays, one
        penalty for every voxel) from ``features`` to the mean over the tuning
        participants of their responses, z-scored as the tuner z-scores them
        (the least-squares fit of one head shared by the participants, as
        tuning's), fitted on the training runs. Its validation loss is the
        participants' mean squared error on their z-scored validation responses,
        relative to that of each voxel's training mean (zero): the unit of
        ``epochs_.val_loss / mean_val_loss_``. Choosing the penalty on the
        validation runs themselves, as a reader of the returned dict does,
        makes the reference optimistic.

        Parameters
        ----------
        features : dict
            Run -> array of shape (n_samples, dim): e.g. the pretrained model's state that the head reads, per
            volume, for every training and validation run.
        responses : dict
            Participant -> run -> array of shape (n_samples, n_voxels): the tuning targets, row for row with
            ``features``.
        penalties : sequence of float
            Ridge penalties (on standardised features).

        Returns
        -------
        dict: penalty -> relative validation loss
        """
        from ..encoding import RidgeEncoder

        self._check_fitted()
        z = {s: {r: (np.asarray(responses[s][r], dtype=np.float64) - self.y_mean_[s]) / self.y_scale_[s]
                 for r in (*self.train_runs_, *self.val_runs_)} for s in self.subjects_}
        X = np.concatenate([features[r] for r in self.train_runs_])
        runs = np.concatenate([np.full(len(features[r]), i) for i, r in enumerate(self.train_runs_)])
        target = np.mean([np.concatenate([z[s][r] for r in self.train_runs_]) for s in self.subjects_], axis=0)
        Xv = np.concatenate([features[r] for r in self.val_runs_])
        Yv = [np.concatenate([z[s][r] for r in self.val_runs_]) for s in self.subjects_]
        out = {}
        for penalty in penalties:
            ridge = RidgeEncoder(delays=(0,), fixed_alphas=np.full(target.shape[1], float(penalty)), dtype="float64")
            predicted = ridge.fit(X, target, runs).predict(Xv)
            out[float(penalty)] = float(np.mean([((predicted - y) ** 2).mean() for y in Yv]) / np.mean([(y**2).mean() for y in Yv]))
        return out

    @property
    def checkpoint_dir(self) -> Path:
        """Where this run's checkpoints live."""
        self._check_fitted()
        return self._dir
