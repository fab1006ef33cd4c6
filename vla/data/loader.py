"""Torch loader of frames and windows over weighted mixtures of RLDS datasets (TensorFlow-free).

    from vla.data.config import DataConfig, DatasetEntry
    from vla.data.loader import RLDSLoader
    loader = RLDSLoader(DataConfig(datasets=[DatasetEntry(path="outputs/data/sim_pick/1.0.0")]))
    for sample in loader:            # endless training stream of per-sample dicts
        ...
    for batch in loader.batches(32): # or stacked torch batches
        ...
    state = loader.state_dict()      # exact position; RLDSLoader(cfg).load_state_dict(state) continues there

    # model-ready batches for training (OpenVLA's RLDSBatchTransform + padded collator), this rank's share:
    loader = RLDSLoader(cfg, transform=processor.transform, collate=processor.collator(),
                        shard=Shard(rank, world_size, per_rank=micro_batch))

Pipeline (one job per stage, as the reference's): read an episode (`RLDSReader`, images left encoded) ->
standardize (`vla.data.oxe` spec of the dataset) -> normalize action/proprio (BOUNDS_Q99 with the
dataset's statistics from `vla.data.statistics`) [`vla.data.sources`] -> cut frames or windows, holding only
encoded JPEG bytes -> weighted mixture + shuffle buffer -> decode, rotate, resize, augment
[`vla.data.augmentation`] -> sample -> `transform` (optional: tokens and pixel tensors, in the workers) ->
batched by `vla.data.collate` (raw samples stacked; transformed ones only padded, by `collate`).

Determinism and resume: the sample sequence is a function of (seed, num_streams, chunk_size) only. Each of
`num_streams` streams owns a share of every dataset's episode order (a fresh permutation per epoch), its own
random generator and shuffle buffer (`shuffle_buffer / num_streams` samples), and produces chunks of
`chunk_size` samples; chunks are delivered round-robin over streams. DataLoader workers host whole streams
(so any `num_workers` dividing `num_streams` gives the same samples). Each chunk carries its stream's state
after it (generator state, episode cursors and the buffer as (dataset, episode, step) references, not
bytes); `state_dict()` is those states plus the position inside the current chunk, and restoring re-reads
the referenced episodes, so resuming costs O(buffer) reads, not a replay.

Ranks own streams: under data parallelism every process builds its loader with a `Shard` (rank, world size,
samples per rank per step) and gets exactly the slice of the global sequence that one process would hand it
(so any number of processes trains on the same global batches), but draws only the streams that hold samples
of its slice and decodes and transforms only those samples. With `chunk_size` equal to the per-rank batch and
`num_streams` a multiple of the world size, each stream belongs to one rank.

Sample layout (frames): images {cam: uint8 (H, W, 3)}, action float32 (7,) normalized, proprio float32 (P,)
normalized, instruction str, dataset str, episode_id str, step int.
Windows add a time axis: images {cam: (Th + Tf, H, W, 3)}, proprio (Th + Tf, P), action (K, 7), with
frame_is_pad (Th + Tf,) and action_is_pad (K,) (padding repeats the first/last frame or action).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch

from vla.core.statistics import DatasetStatistics
from vla.data.augmentation import augment, center_crop, compile_kernel, resize_image, sample_params
from vla.data.collate import collate_samples, split_batch, to_numpy, to_torch
from vla.data.config import DataConfig, to_data_config
from vla.data.rlds_reader import decode_image
from vla.data.sources import EpisodeSource, Source, no_steps_error, open_episodes, resolve_sources, sampling_probabilities

__all__ = ["RLDSLoader", "Shard", "Source", "collate_samples", "resolve_sources", "sampling_probabilities",
           "split_batch", "to_numpy", "to_torch"]

logger = logging.getLogger(__name__)

_STATE_VERSION = 1


@dataclass(frozen=True)
class Shard:
    """One process's share of the global sample sequence: of every block of `per_rank * world_size` samples,
    positions [rank * per_rank, (rank + 1) * per_rank) (the slice data parallelism gives that rank)."""

    rank: int = 0
    world_size: int = 1
    per_rank: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size or self.per_rank < 1:
            raise ValueError(f"Shard needs 0 <= rank < world_size and per_rank >= 1, got {self}")

    @property
    def whole(self) -> bool:
        return self.world_size == 1

    def positions(self, chunk_index: int, chunk_size: int) -> list[int]:
        """This shard's positions inside global chunk `chunk_index`."""
        block, start = self.per_rank * self.world_size, chunk_index * chunk_size
        return [j for j in range(chunk_size) if (start + j) % block // self.per_rank == self.rank]

    def runs(self, stream: int, num_streams: int, chunk_size: int) -> bool:
        """Whether any chunk of `stream` holds positions of this shard (the pattern repeats within a block)."""
        return any(self.positions(c * num_streams + stream, chunk_size) for c in range(self.per_rank * self.world_size))

    def key(self) -> list[int] | None:
        """What a saved position records (None: the whole sequence, as states saved before shards)."""
        return None if self.whole else [self.rank, self.world_size, self.per_rank]


def _make_item(d: int, ep: dict[str, Any], t: int, cfg: DataConfig) -> tuple:
    """What the shuffle buffer holds for step t: references to encoded frames and small arrays (copied)."""
    w = cfg.window
    n = ep["action"].shape[0]
    if w.is_frames:
        images = {c: ep["images"][c][t] for c in cfg.cameras}
        return (d, ep["index"], t, images, ep["action"][t].copy(), ep["proprio"][t].copy(), ep["instruction"],
                ep["episode_id"], None, None)
    frames = np.arange(t - w.history + 1, t + w.future_frames + 1)
    frame_pad = (frames < 0) | (frames >= n)
    frames = np.clip(frames, 0, n - 1)
    acts = np.arange(t, t + w.action_chunk)
    action_pad = acts >= n
    acts = np.minimum(acts, n - 1)
    images = {c: tuple(ep["images"][c][i] for i in frames) for c in cfg.cameras}
    return (d, ep["index"], t, images, ep["action"][acts], ep["proprio"][frames], ep["instruction"], ep["episode_id"],
            frame_pad, action_pad)


# ------------------------------------------------------------------------------------------------ streams
class _Stream:
    """One deterministic stream: mixture sampling, per-dataset episode order, shuffle buffer, frame processing."""

    def __init__(self, stream_id: int, sources: list[Source], probs: np.ndarray, cfg: DataConfig, train: bool,
                 state: dict | None = None, *, transform: Callable[[dict], Any] | None = None,
                 shard: Shard = Shard()) -> None:
        self.id = stream_id
        self.transform = transform
        self.shard = shard
        self.sources = sources
        self.probs = probs
        self.cfg = cfg
        self.train = train
        self.buffer_size = max(1, cfg.shuffle_buffer // cfg.num_streams)
        self._episodes: list[EpisodeSource | None] = [None] * len(sources)
        self._perm_cache: dict[tuple[int, int], np.ndarray] = {}
        state = state or initial_stream_state(stream_id, cfg, len(sources))
        self.rng = np.random.Generator(np.random.PCG64())
        self.rng.bit_generator.state = state["rng"]
        self.cursor = list(state["cursor"])  # per dataset: next global episode position of this stream
        self.current = list(state["current"])  # per dataset: [episode index or -1, next step position]
        self.emitted = int(state["emitted"])
        self._pending_buffer = np.asarray(state["buffer"], np.int64).reshape(-1, 3)
        self.buffer: list[tuple] = []
        self._ep: list[dict | None] = [None] * len(sources)
        self._pool: Any = None  # frame-processing threads (cfg.frame_threads > 1)

    # episode order: global position g -> (epoch, position) -> episode index of a per-epoch permutation
    def _episode_at(self, d: int, g: int) -> int:
        n = self.sources[d].num_episodes
        epoch, pos = divmod(g, n)
        key = (d, epoch)
        perm = self._perm_cache.get(key)
        if perm is None:
            if not self.train:
                perm = np.arange(n)
            else:
                perm = np.random.default_rng([self.cfg.seed, d, epoch, 7]).permutation(n)
            self._perm_cache = {k: v for k, v in self._perm_cache.items() if k[0] != d}
            self._perm_cache[key] = perm
        return int(perm[pos])

    def _episode_source(self, d: int) -> EpisodeSource:
        src = self._episodes[d]
        if src is None:
            src = self._episodes[d] = open_episodes(self.sources[d], self.cfg)
        return src

    def _load(self, d: int, index: int) -> dict:
        return self._episode_source(d).load(index)

    def _next_item(self) -> tuple:
        d = int(self.rng.choice(len(self.sources), p=self.probs)) if len(self.sources) > 1 else 0
        tries = 0
        while True:
            index, pos = self.current[d]
            ep = self._ep[d]
            if index >= 0 and (ep is None or ep["index"] != index):
                ep = self._ep[d] = self._load(d, index)
            if ep is not None and index >= 0 and pos < len(ep["keep"]):
                self.current[d] = [index, pos + 1]
                return _make_item(d, ep, int(ep["keep"][pos]), self.cfg)
            index = self._episode_at(d, self.cursor[d])
            self.cursor[d] += self.cfg.num_streams
            self.current[d] = [index, 0]
            tries += 1
            if tries > self.sources[d].num_episodes + 1:
                raise no_steps_error(self.sources[d], self.cfg)

    def _restore_buffer(self) -> None:
        by_episode: dict[tuple[int, int], dict] = {}
        for d, index, t in self._pending_buffer.tolist():
            ep = by_episode.get((d, index))
            if ep is None:
                ep = by_episode[(d, index)] = self._load(d, index)
            self.buffer.append(_make_item(d, ep, t, self.cfg))
        self._pending_buffer = None

    def next_items(self, n: int) -> list[tuple]:
        if self._pending_buffer is not None:
            self._restore_buffer()
        out = []
        for _ in range(n):
            while len(self.buffer) < self.buffer_size:
                self.buffer.append(self._next_item())
            i = int(self.rng.integers(len(self.buffer)))
            self.buffer[i], self.buffer[-1] = self.buffer[-1], self.buffer[i]
            out.append(self.buffer.pop())
        return out

    def next_chunk(self, n: int, skip: int = 0) -> dict:
        """The next n samples drawn; those of this stream's shard processed (the first `skip` of them not):
        raw samples stacked under "batch", transformed ones listed under "samples"."""
        items = self.next_items(n)
        first = self.emitted
        self.emitted += n
        mine = self.shard.positions((first // n) * self.cfg.num_streams + self.id, n)[skip:]
        todo = [(items[k], first + k) for k in mine]
        if self.transform is not None:
            return {"stream": self.id, "skip": skip, "batch": None, "samples": self._run(todo), "state": self.state()}
        # frames are written straight into the batch's image tensors; inside a DataLoader worker these live in
        # shared memory from the start, so handing the batch over copies no pixels (otherwise: a stack, then a
        # copy into shared memory at hand-over)
        images = None
        if todo and self.cfg.window.is_frames:
            shared = torch.utils.data.get_worker_info() is not None
            images = {c: _empty_frames(len(todo), self.cfg.image_size, shared) for c in self.cfg.cameras}
        jobs = [(item, index, {c: v[k].numpy() for c, v in images.items()} if images is not None else None)
                for k, (item, index) in enumerate(todo)]
        samples = self._run(jobs)
        batch = None
        if samples:
            batch = collate_samples(samples, images=images)
            if images is None:
                batch["images"] = {c: torch.from_numpy(v) for c, v in batch["images"].items()}
        return {"stream": self.id, "skip": skip, "batch": batch, "samples": None, "state": self.state()}

    def _run(self, jobs: list[tuple]) -> list:
        """`_process` over jobs, on `frame_threads` threads when asked (order kept: deterministic)."""
        if self.cfg.frame_threads > 1 and len(jobs) > 1:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.cfg.frame_threads, thread_name_prefix="vla-frames")
            return list(self._pool.map(lambda a: self._process(*a), jobs))
        return [self._process(*job) for job in jobs]

    def _process(self, item: tuple, sample_index: int, out: dict[str, np.ndarray] | None = None) -> Any:
        """Decode, rotate, resize and augment one sample's frames (frames mode: into `out` {camera: (H, W, 3)}),
        then apply the loader's `transform` if it has one."""
        d, _, t, images, action, proprio, instruction, episode_id, frame_pad, action_pad = item
        cfg = self.cfg
        size = (cfg.image_size, cfg.image_size)
        params = None
        if self.train and cfg.image_augmentation:
            params = sample_params(np.random.default_rng([cfg.seed, self.id, sample_index, 11]), cfg.augmentation)
        rotate = bool(getattr(self.sources[d].spec, "rotate_images_180", False))

        def frame(data: bytes, dst: np.ndarray | None = None) -> np.ndarray:
            if isinstance(data, np.ndarray):  # video frames come decoded
                img = data
            else:  # LeRobot PNG frames decode themselves (vla.data.lerobot.video.PNGFrame)
                img = data.to_array() if hasattr(data, "to_array") else decode_image(data)
            if rotate:
                img = img[::-1, ::-1]
            img = resize_image(img, size)
            if params is not None:
                return augment(img, params, dst)
            if not self.train and cfg.center_crop:
                return center_crop(img, cfg.augmentation.crop_scale, dst)
            if dst is None:
                return np.ascontiguousarray(img)
            dst[...] = img
            return dst

        if out is not None:
            out_images = {c: frame(b, out[c]) for c, b in images.items()}
        elif frame_pad is None:
            out_images = {c: frame(b) for c, b in images.items()}
        else:
            out_images = {c: np.stack([frame(b) for b in seq]) for c, seq in images.items()}
        sample = {"images": out_images, "action": action, "proprio": proprio, "instruction": instruction,
                  "dataset": self.sources[d].name, "episode_id": episode_id, "step": t}
        if frame_pad is not None:
            sample["frame_is_pad"] = frame_pad
            sample["action_is_pad"] = action_pad
        return sample if self.transform is None else self.transform(sample)

    def state(self) -> dict:
        buf = [(it[0], it[1], it[2]) for it in self.buffer] if self._pending_buffer is None else self._pending_buffer
        return {"rng": self.rng.bit_generator.state, "cursor": list(self.cursor),
                "current": [list(c) for c in self.current], "emitted": self.emitted,
                "buffer": np.asarray(buf, np.int32).reshape(-1, 3)}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
        for src in self._episodes:
            if src is not None:
                src.close()


def _empty_frames(n: int, size: int, shared: bool) -> torch.Tensor:
    images = torch.empty((n, size, size, 3), dtype=torch.uint8)
    return images.share_memory_() if shared else images


def initial_stream_state(stream_id: int, cfg: DataConfig, num_sources: int) -> dict:
    rng = np.random.Generator(np.random.PCG64([cfg.seed, stream_id, 3]))
    return {"rng": rng.bit_generator.state, "cursor": [stream_id] * num_sources,
            "current": [[-1, 0] for _ in range(num_sources)], "emitted": 0, "buffer": np.zeros((0, 3), np.int32)}


# ---------------------------------------------------------------------------------------- torch plumbing
def _identity(x: Any) -> Any:
    return x


class _StreamsDataset:
    """torch IterableDataset body: each worker runs its share of the streams, round-robin, forever."""

    def __init__(self, sources: list[Source], probs: np.ndarray, cfg: DataConfig, train: bool,
                 states: list[dict], first_stream: int, skip: int, transform: Callable[[dict], Any] | None,
                 shard: Shard, collate: Callable[[list], Any] | None = None, batch_size: int | None = None) -> None:
        self.sources, self.probs, self.cfg, self.train = sources, probs, cfg, train
        self.states, self.first_stream, self.skip = states, first_stream, skip
        self.transform, self.shard = transform, shard
        self.collate, self.batch_size = collate, batch_size  # batch_size: collate whole batches here

    def __iter__(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        num_workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        if info is not None:
            torch.set_num_threads(1)  # a busy box: one thread per loader process
        s_total, size = self.cfg.num_streams, self.cfg.chunk_size
        order = [(self.first_stream + j) % s_total for j in range(s_total)]
        # a stream without samples of this shard is not run: it hands over empty chunks (keeping the order)
        mine = [_Stream(s, self.sources, self.probs, self.cfg, self.train, self.states[s], transform=self.transform,
                        shard=self.shard) if self.shard.runs(s, s_total, size) else s
                for s in order[worker::num_workers]]
        skip = self.skip if worker == 0 else 0
        try:
            while True:
                for stream in mine:
                    if isinstance(stream, int):
                        chunk = {"stream": stream, "skip": 0, "batch": None, "samples": None,
                                 "state": self.states[stream]}
                    else:
                        chunk = self._finish(stream.next_chunk(size, skip), in_worker=info is not None)
                    skip = 0
                    yield chunk
        finally:
            for stream in mine:
                if not isinstance(stream, int):
                    stream.close()

    def _finish(self, chunk: dict, in_worker: bool) -> dict:
        """Transformed samples as whole padded batches when asked (`batch_size`), else ready to hand over."""
        samples, b = chunk["samples"], self.batch_size
        if samples and b:
            chunk["ready"] = [self.collate(samples[i:i + b]) for i in range(0, len(samples), b)]
            chunk["samples"] = None
        elif samples and in_worker:
            _share_fields(samples)
        return chunk


def _share_fields(samples: list) -> None:
    """Move each tensor field of a chunk's samples into one shared-memory buffer, each sample keeping a view.

    Handing a chunk from a worker to the training process shares every tensor storage separately (a new
    shared-memory file, a copy and a file descriptor each); one buffer per field makes that a handful."""
    if not isinstance(samples[0], dict):
        return
    for key, first in samples[0].items():
        if any(not torch.is_tensor(s[key]) or s[key].dtype != first.dtype for s in samples):
            continue
        sizes = [s[key].numel() for s in samples]
        flat = torch.empty(sum(sizes), dtype=first.dtype).share_memory_()
        torch.cat([s[key].reshape(-1) for s in samples], out=flat)
        offset = 0
        for s, n in zip(samples, sizes):
            s[key] = flat[offset:offset + n].view(s[key].shape)
            offset += n


class _TorchStreams(torch.utils.data.IterableDataset):
    def __init__(self, body: _StreamsDataset) -> None:
        self.body = body

    def __iter__(self) -> Iterator[dict]:
        return iter(self.body)


# ------------------------------------------------------------------------------------------------ loader
class RLDSLoader:
    """Endless, deterministic, resumable stream of training samples (or one ordered pass with train=False).

    Args:
        cfg: a `DataConfig` (or a dict / hydra node of one).
        train: True: shuffled, augmented, endless. False: every step of every episode once, in order,
            without augmentation (`center_crop` applies), in this process.
        sources: pre-resolved datasets (skips resolving and statistics; used to share them train/val).
        transform: applied to each sample where it is made (in the DataLoader workers), e.g.
            `VLAProcessor.transform` (tokens and pixel tensors); iteration then yields its outputs.
        collate: what `batches()` makes of a list of transformed samples (e.g. `VLAProcessor.collator()`, which
            only pads and stacks); needed with `transform`.
        shard: this process's slice of the global sequence (training under data parallelism); only its
            samples are decoded and transformed here.
    """

    def __init__(self, cfg: DataConfig | Any, *, train: bool = True, sources: list[Source] | None = None,
                 transform: Callable[[dict], Any] | None = None, collate: Callable[[list], Any] | None = None,
                 shard: Shard | None = None) -> None:
        self.cfg = to_data_config(cfg)
        self.train = train
        self.transform, self.collate = transform, collate
        self.shard = shard or Shard()
        if not train and not self.shard.whole:
            raise ValueError("an ordered pass (train=False) is not sharded: every process reads all of it")
        self.sources = sources if sources is not None else resolve_sources(self.cfg)
        self.probs = sampling_probabilities(self.sources)
        s = self.cfg.num_streams
        self._states = [initial_stream_state(i, self.cfg, len(self.sources)) for i in range(s)]
        self._next_stream = 0  # stream whose chunk is consumed next
        self._consumed = 0  # samples of that chunk already consumed
        self._iterating = False
        logger.info(
            "loader over %s (probabilities %s), split %s, %s, buffer %d, %d worker(s), %d stream(s)%s",
            [src.name for src in self.sources], np.round(self.probs, 4).tolist(), self.cfg.split,
            "frames" if self.cfg.window.is_frames else f"windows {self.cfg.window}", self.cfg.shuffle_buffer,
            self.cfg.num_workers, s,
            "" if self.shard.whole else f", rank {self.shard.rank} of {self.shard.world_size} runs streams "
            f"{[i for i in range(s) if self.shard.runs(i, s, self.cfg.chunk_size)]}",
        )

    @property
    def statistics(self) -> dict[str, DatasetStatistics]:
        return {s.name: s.statistics for s in self.sources}

    @property
    def num_episodes(self) -> int:
        return sum(s.num_episodes for s in self.sources)

    # ---------------------------------------------------------------------------------------- iteration
    def _chunks(self, batch_size: int | None = None) -> Iterator[dict]:
        """Chunks in delivery order; with `batch_size`, transformed samples come as ready batches when every
        chunk holds whole batches of this shard's samples (the chunk size a multiple of the batch size)."""
        if self._iterating:
            raise RuntimeError("this RLDSLoader is already being iterated; create a second loader for a second stream")
        self._iterating = True
        c, block = self.cfg.chunk_size, self.shard.per_rank * self.shard.world_size
        aligned = (batch_size is not None and self.transform is not None and self._consumed % batch_size == 0
                   and all(len(self.shard.positions(k, c)) % batch_size == 0 for k in range(block)))
        body = _StreamsDataset(self.sources, self.probs, self.cfg, True, list(self._states), self._next_stream,
                               self._consumed, self.transform, self.shard, self.collate,
                               batch_size if aligned else None)
        if self.cfg.image_augmentation or self.cfg.center_crop:
            compile_kernel()  # before the workers fork: they inherit it
        if self.cfg.num_workers == 0:
            chunks = iter(body)
        else:
            chunks = iter(torch.utils.data.DataLoader(
                _TorchStreams(body), batch_size=None, num_workers=self.cfg.num_workers, collate_fn=_identity,
                prefetch_factor=2, persistent_workers=False,
            ))
        try:
            for chunk in chunks:
                yield chunk
        finally:
            self._iterating = False
            del chunks

    def _chunk_done(self, chunk: dict) -> None:
        self._states[chunk["stream"]] = chunk["state"]
        self._next_stream = (chunk["stream"] + 1) % self.cfg.num_streams
        self._consumed = 0

    @staticmethod
    def _chunk_samples(chunk: dict) -> list:
        if chunk["samples"] is not None:
            return chunk["samples"]
        return list(split_batch(chunk["batch"])) if chunk["batch"] is not None else []

    def __iter__(self) -> Iterator[Any]:
        if not self.train:
            yield from self._ordered_pass()
            return
        for chunk in self._chunks():
            for sample in self._chunk_samples(chunk):
                self._consumed += 1
                yield sample
            self._chunk_done(chunk)

    def batches(self, batch_size: int | None = None, *, as_torch: bool = True) -> Iterator[Any]:
        """Endless batches; the same sample sequence as iterating. Raw samples are stacked (torch tensors by
        default); transformed ones go through `collate`.

        With raw samples and batch_size == chunk_size (the default) each worker's chunk is handed over as it is."""
        batch_size = batch_size or self.cfg.chunk_size
        if self.transform is not None and self.collate is None:
            raise ValueError("a loader with a transform needs `collate` to make batches (e.g. processor.collator())")
        if not self.train:
            yield from _rebatch(self._ordered_pass(), batch_size, self._collate_fn(as_torch))
            return
        collate = self._collate_fn(as_torch)
        # (sample, its chunk, last of its chunk); a chunk without samples here is (None, chunk, True), so
        # chunks are marked done in delivery order
        pending: list[tuple[Any, dict, bool]] = []
        filled = 0
        for chunk in self._chunks(batch_size):
            for i, ready in enumerate(chunk.get("ready") or []):  # whole batches: nothing is pending then
                self._consumed += batch_size
                if i == len(chunk["ready"]) - 1:
                    self._chunk_done(chunk)
                yield ready
            if chunk.get("ready"):
                continue
            batch = chunk["batch"]
            if not pending and batch is not None and len(batch["instruction"]) == batch_size:  # fast path
                self._consumed += batch_size
                self._chunk_done(chunk)
                yield to_torch(batch) if as_torch else to_numpy(batch)
                continue
            samples = self._chunk_samples(chunk)
            if not samples:
                if pending:
                    pending.append((None, chunk, True))
                else:
                    self._chunk_done(chunk)
                continue
            for i, sample in enumerate(samples):
                pending.append((sample, chunk, i == len(samples) - 1))
                filled += 1
                if filled == batch_size:
                    out = []
                    for s, c, last in pending:  # the position advances only over samples handed out
                        if s is not None:
                            self._consumed += 1
                            out.append(s)
                        if last:
                            self._chunk_done(c)
                    pending, filled = [], 0
                    yield collate(out)

    def _collate_fn(self, as_torch: bool) -> Callable[[list], Any]:
        if self.transform is not None:
            return self.collate
        return (lambda samples: to_torch(collate_samples(samples))) if as_torch else collate_samples

    def _ordered_pass(self) -> Iterator[Any]:
        stream = _Stream(0, self.sources, self.probs, self.cfg, False, transform=self.transform)
        try:
            for d in range(len(self.sources)):
                steps = 0
                for index in range(self.sources[d].num_episodes):
                    ep = stream._load(d, index)
                    steps += len(ep["keep"])
                    for t in ep["keep"]:
                        yield stream._process(_make_item(d, ep, int(t), self.cfg), 0)
                if steps == 0:  # a silently empty dataset would make the pass quietly smaller
                    raise no_steps_error(self.sources[d], self.cfg)
        finally:
            stream.close()

    # ------------------------------------------------------------------------------------------- resume
    def state_dict(self) -> dict:
        """The exact position: plain Python types (safe for `torch.save` / `torch.load(weights_only=True)`)."""
        streams = []
        for st in self._states:
            streams.append({"rng": st["rng"], "cursor": list(st["cursor"]), "current": [list(c) for c in st["current"]],
                            "emitted": int(st["emitted"]), "buffer": np.asarray(st["buffer"]).reshape(-1).tolist()})
        state = {"version": _STATE_VERSION, "seed": self.cfg.seed, "num_streams": self.cfg.num_streams,
                 "chunk_size": self.cfg.chunk_size, "datasets": [s.name for s in self.sources],
                 "split": self.cfg.split, "next_stream": self._next_stream, "consumed": self._consumed,
                 "streams": streams}
        if not self.shard.whole:
            state["shard"] = self.shard.key()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Continue exactly where `state` was taken (same datasets, seed, streams and chunk size)."""
        if self._iterating:
            raise RuntimeError("load_state_dict must be called before iterating the loader")
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"loader state version {state.get('version')!r} is not {_STATE_VERSION}")
        mine = {"seed": self.cfg.seed, "num_streams": self.cfg.num_streams, "chunk_size": self.cfg.chunk_size,
                "datasets": [s.name for s in self.sources], "split": self.cfg.split, "shard": self.shard.key()}
        diff = {k: (state.get(k), v) for k, v in mine.items() if state.get(k) != v}
        if diff:
            raise ValueError(
                "the saved loader position belongs to a different data setup (saved vs now): "
                + ", ".join(f"{k}: {a!r} vs {b!r}" for k, (a, b) in diff.items())
                + "; resume with the saved data config"
            )
        self._states = [{"rng": st["rng"], "cursor": list(st["cursor"]), "current": [list(c) for c in st["current"]],
                         "emitted": int(st["emitted"]), "buffer": np.asarray(st["buffer"], np.int32).reshape(-1, 3)}
                        for st in state["streams"]]
        self._next_stream = int(state["next_stream"])
        self._consumed = int(state["consumed"])


def _rebatch(samples: Iterator[Any], batch_size: int, collate: Callable[[list], Any]) -> Iterator[Any]:
    pending = []
    for s in samples:
        pending.append(s)
        if len(pending) == batch_size:
            yield collate(pending)
            pending = []
    if pending:
        yield collate(pending)
