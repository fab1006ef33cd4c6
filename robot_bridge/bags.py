"""Read rosbag2 recordings (mcap or sqlite3) the way rosbag2 itself does, for `vla-convert`.

    with Bag("outputs/bridge/<run>/bag") as bag:             # or a single .mcap / .db3 file
        print(bag.describe_topics())                         # what the storage holds: name, type, count
        data = bag.read(["/camera/primary/image_raw"])       # topic -> [(stamp, bag_time, message)]
        bag.definitions                                      # which message definitions decoded them

Why not `rosbags.rosbag2.Reader`: it takes the topic list from metadata.yaml and pairs each topic of the
storage with it by type *and* offered-QoS text. Where the two differ it reads 0 messages without an error;
rosbag2's own test bags do this (`rosbag2_py/test/resources/*/talker`: metadata.yaml writes QoS durations as
0 where the storage says 2147483647, tests/fixtures/rosbag2/). rosbag2 reads the topics from the storage's own
tables (sqlite3 `topics`, mcap channels and schemas) and uses metadata.yaml only for the file list, the
storage id and the compression; so does this module. The number of messages read per topic is then checked
against the storage's own count and against metadata.yaml's.

Message definitions (a Humble `sensor_msgs/Range` has no `variance`, a Kilted one has): by default the bag's
own, i.e. the definitions it carries (mcap schemas, sqlite3 `message_definitions`), else those of the ROS 2
distro its metadata names (`ros_distro`), else Humble (bags before metadata version 8 name none: Humble or
older). `distro=` picks a distro instead; `msg_files=` adds `.msg` files for types nobody knows.
`definitions` says which were used. Uses the storage readers of `rosbags` (pinned in requirements-cpu.txt).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: ROS 2 distros whose message definitions `rosbags` ships (`Stores.ROS2_<NAME>`)
DISTROS = ("foxy", "galactic", "humble", "iron", "jazzy", "kilted")
#: storage id (metadata.yaml `storage_identifier`) -> file suffix
STORAGES = {"mcap": ".mcap", "sqlite3": ".db3"}
#: the distro assumed for a bag that names none (metadata.yaml before version 8: Humble or older)
FALLBACK_DISTRO = "humble"


class BagError(ValueError):
    """A bag that cannot be read as asked; the message names the bag, topic or type, and the fix."""


class BagCountError(BagError):
    """Messages read from a bag do not match the counts its storage or its metadata.yaml give."""


@dataclass
class TopicInfo:
    """A topic as the storage records it (summed over the bag's files)."""

    name: str
    type: str
    count: int  # messages in the storage (its own index)
    serialization: str = "cdr"
    metadata_type: str | None = None  # what metadata.yaml says, where it lists the topic
    metadata_count: int | None = None


def _stamp(msg: Any, bag_t: float) -> float:
    h = getattr(msg, "header", None)
    if h is None:
        return bag_t
    s = float(h.stamp.sec) + float(h.stamp.nanosec) * 1e-9
    return s if s > 0 else bag_t


def _msg_file_type(path: Path) -> str:
    """`.../<package>/msg/<Name>.msg` -> `<package>/msg/<Name>`."""
    if path.suffix != ".msg" or path.parent.name != "msg" or not path.parent.parent.name:
        raise BagError(f"message definition {path}: expected a file <package>/msg/<Name>.msg (the type name is "
                       "taken from that path, e.g. example_interfaces/msg/String.msg)")
    return f"{path.parent.parent.name}/msg/{path.stem}"


class Bag:
    """An open rosbag2: a directory with metadata.yaml, or one .mcap / .db3 file.

    Args:
        path: the bag.
        distro: message definitions of this ROS 2 distro (one of `DISTROS`); "" = the bag's own.
        msg_files: `.msg` files (`<package>/msg/<Name>.msg`) for types neither the bag nor the distro define;
            they win over both.
    """

    def __init__(self, path: str | Path, *, distro: str = "", msg_files: list[str] | tuple[str, ...] = ()):
        self.path = Path(path)
        if distro and distro not in DISTROS:
            raise BagError(f"distro={distro!r}; choose one of {DISTROS} (or '' for the bag's own definitions)")
        self.distro, self.msg_files = distro, [Path(p) for p in msg_files]
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._storages: list[Any] = []
        self.metadata: dict[str, Any] = {}
        self.compression: str | None = None
        try:
            files = self._locate()
            self._open(files)
            self.topics = self._topics()
        except BaseException:
            self.close()
            raise
        self._typestore = None
        self.definitions = ""

    # ---- opening ---------------------------------------------------------------------------------------
    def _locate(self) -> list[Path]:
        """The storage files (metadata.yaml's list, or the file given), after checking the storage id."""
        p = self.path
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such bag (give a rosbag2 directory or a .mcap / .db3 file)")
        if p.is_file():
            storage = next((s for s, suffix in STORAGES.items() if p.suffix == suffix), None)
            if storage is None:
                raise BagError(self._unsupported(p.suffix or p.name))
            self.storage = storage
            return [p]
        meta_path = p / "metadata.yaml"
        if not meta_path.is_file():
            found = sorted(x.name for x in p.iterdir() if x.suffix in (".mcap", ".db3", ".bag", ".zstd"))
            raise FileNotFoundError(f"{p}: not a rosbag2 directory (no metadata.yaml; files there: {found or 'none'}); "
                                    "give a storage file itself (path/to/bag_0.mcap), or write the metadata with "
                                    "`ros2 bag reindex`")
        import yaml

        try:
            self.metadata = yaml.safe_load(meta_path.read_text())["rosbag2_bagfile_information"]
            self.storage = str(self.metadata["storage_identifier"])
            names = list(self.metadata["relative_file_paths"])
        except (yaml.YAMLError, KeyError, TypeError) as e:
            raise BagError(f"{meta_path}: not rosbag2 metadata ({type(e).__name__}: {e}); `ros2 bag reindex` "
                           "rewrites it from the storage files") from None
        if self.storage not in STORAGES:
            raise BagError(self._unsupported(self.storage))
        mode = str(self.metadata.get("compression_mode") or "").lower()
        self.compression = None if mode in ("", "none") else mode
        fmt = self.metadata.get("compression_format") or ""
        if self.compression and (self.compression not in ("file", "message") or fmt != "zstd"):
            raise BagError(f"{p}: compression {self.compression!r} with {fmt!r} is not supported (only zstd, per "
                           "file or per message); decompress it with `ros2 bag convert`")
        files = [p / Path(n).name for n in names]
        missing = [f.name for f in files if not f.exists()]
        if missing:
            raise BagError(f"{p}: storage files listed in metadata.yaml are missing: {missing}")
        return files

    def _unsupported(self, storage: str) -> str:
        hint = ("a ROS 1 bag: convert it with `rosbags-convert --src <file.bag> --dst <dir>` (from the rosbags "
                "package, installed here)" if storage in (".bag", "rosbag_v2") else
                "convert it with `ros2 bag convert -i <bag> -o out.yaml`, out.yaml naming storage_id: mcap")
        return f"{self.path}: storage format {storage!r} is not supported (supported: {sorted(STORAGES)}); {hint}"

    def _open(self, files: list[Path]) -> None:
        from rosbags.rosbag2.errors import ReaderError
        from rosbags.rosbag2.storage_mcap import McapReader
        from rosbags.rosbag2.storage_sqlite3 import Sqlite3Reader

        reader = McapReader if self.storage == "mcap" else Sqlite3Reader
        for f in files:
            if self.compression == "file":
                f = self._decompressed(f)
            storage = reader(f)
            try:
                storage.open()
            except ReaderError as e:
                raise BagError(f"{self.path}: cannot read {f.name} as {self.storage}: {e}") from None
            self._storages.append(storage)

    def _decompressed(self, f: Path) -> Path:
        from backports import zstd  # what rosbags itself uses on Python < 3.14

        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="bag_")
        out = Path(self._tmp.name) / f.name.removesuffix(".zstd")
        with f.open("rb") as src, zstd.open(src, "rb") as inp, out.open("wb") as dst:
            shutil.copyfileobj(inp, dst)
        return out

    def _topics(self) -> dict[str, TopicInfo]:
        meta = {}
        for entry in self.metadata.get("topics_with_message_count") or []:
            tm = entry.get("topic_metadata", {})
            meta[tm.get("name")] = (tm.get("type"), entry.get("message_count"))
        topics: dict[str, TopicInfo] = {}
        for storage in self._storages:
            for c in storage.connections:
                t = topics.get(c.topic)
                if t is None:
                    mtype, mcount = meta.get(c.topic, (None, None))
                    topics[c.topic] = TopicInfo(c.topic, c.msgtype, c.msgcount, c.ext.serialization_format, mtype, mcount)
                elif t.type != c.msgtype:
                    raise BagError(f"{self.path}: topic {c.topic} is recorded with two types, {t.type} and {c.msgtype}; "
                                   "split the bag by type (`ros2 bag convert`) before converting")
                else:
                    t.count += c.msgcount
        for t in topics.values():
            if t.metadata_type is not None and t.metadata_type != t.type:
                logger.warning("%s: metadata.yaml gives %s the type %s, the storage %s: reading by the storage's own "
                               "table, as rosbag2 does", self.path, t.name, t.metadata_type, t.type)
        return topics

    def describe_topics(self) -> str:
        """One line per topic: name, type, message count (for error messages and logs)."""
        if not self.topics:
            return "  (no topics)"
        width = max(len(n) for n in self.topics)
        return "\n".join(f"  {t.name:<{width}}  {t.type}  ({t.count} messages)" for t in sorted(self.topics.values(), key=lambda t: t.name))

    @property
    def ros_distro(self) -> str:
        """The distro the bag says it was recorded on ("" if it names none)."""
        d = str(self.metadata.get("ros_distro") or "")
        if not d and self.storage == "sqlite3":
            for s in self._storages:  # sqlite3 schema >= 3 keeps it in its `schema` table
                try:
                    row = s.dbconn.execute("SELECT ros_distro FROM schema").fetchone()
                    d = str(row[0]) if row else ""
                except Exception:  # older schema without that table
                    d = ""
                break
        return d

    # ---- message definitions ---------------------------------------------------------------------------
    def typestore(self):
        """The `rosbags` typestore that decodes this bag (built once; see the module docstring)."""
        if self._typestore is not None:
            return self._typestore
        from rosbags.typesys import Stores, get_typestore, get_types_from_idl, get_types_from_msg
        from rosbags.interfaces import MessageDefinitionFormat

        own = self.ros_distro
        if self.distro:
            base, why = self.distro, "chosen with distro="
        elif own in DISTROS:
            base, why = own, "the bag's ros_distro"
        else:
            base = FALLBACK_DISTRO
            why = (f"assumed: the bag names {'ros_distro ' + repr(own) if own else 'no ROS distro'}; choose with "
                   "distro=")
        typs = dict(get_typestore(Stores[f"ROS2_{base.upper()}"]).fielddefs)
        embedded: dict = {}
        for storage in self._storages:
            for c in storage.connections:
                if c.msgdef.format == MessageDefinitionFormat.NONE or not c.msgdef.data.strip():
                    continue
                try:
                    if c.msgdef.format == MessageDefinitionFormat.MSG:
                        embedded.update(get_types_from_msg(c.msgdef.data, c.msgtype))
                    else:
                        sep = "=" * 80 + "\n"
                        for part in c.msgdef.data.split(sep):
                            if part.strip():
                                embedded.update(get_types_from_idl(part.split("\n", 1)[1] if part.startswith("IDL: ") else part))
                except Exception as e:  # a definition rosbags cannot parse: the distro's is used instead
                    logger.warning("%s: cannot parse the bag's definition of %s (%s); using ROS 2 %s's", self.path,
                                   c.msgtype, e, base)
        used_own = sorted(k for k in embedded if not self.distro or k not in typs)
        for k in used_own:
            typs[k] = embedded[k]
        for f in self.msg_files:
            if not f.is_file():
                raise BagError(f"message definition {f} does not exist")
            typs.update(get_types_from_msg(f.read_text(), _msg_file_type(f)))
        ts = get_typestore(Stores.EMPTY)
        ts.register(typs)
        recorded = sorted({t.type for t in self.topics.values()} & set(used_own))
        parts = [f"the bag's own for {len(recorded)} recorded type(s)"] if recorded else []
        parts.append(f"ROS 2 {base} ({why}{self.distro if self.distro else ''})" + (" for the rest" if recorded else ""))
        if self.msg_files:
            parts.append(f"{len(self.msg_files)} .msg file(s) given")
        self.definitions = "; ".join(parts)
        self._base_distro = base
        self._typestore = ts
        return ts

    def check_types(self, topics: list[str]) -> None:
        """Every topic in `topics` that the bag has can be decoded (CDR, a known type), else BagError."""
        ts = self.typestore()
        for name in topics:
            t = self.topics.get(name)
            if t is None:
                continue
            if t.serialization != "cdr":
                raise BagError(f"{self.path}: topic {name} is serialized as {t.serialization!r}, not CDR; only CDR "
                               "(what every ROS 2 RMW records) can be decoded; re-record it with a ROS 2 RMW")
            if t.type not in ts.types:
                pkg, _, short = t.type.partition("/msg/")
                raise BagError(
                    f"{self.path}: topic {name} has type {t.type}, which neither the bag (it carries no definition "
                    f"of it) nor ROS 2 {self._base_distro}'s message definitions know. Give its definition: "
                    f"msg_files=[path/to/{pkg}/msg/{short or t.type.rsplit('/', 1)[-1]}.msg] (vla-convert: "
                    "convert.msg_files=[...]), or record the topic with a standard type")

    def _distros_decoding(self, raw: bytes, msgtype: str) -> list[str]:
        """The distros whose definitions decode `raw` as `msgtype` (for the error message)."""
        from rosbags.typesys import Stores, get_typestore

        fits = []
        for d in DISTROS:
            ts = get_typestore(Stores[f"ROS2_{d.upper()}"])
            try:
                if msgtype in ts.types:
                    ts.deserialize_cdr(raw, msgtype)
                    fits.append(d)
            except Exception:  # does not decode with this distro's definitions
                continue
        return fits

    # ---- reading ---------------------------------------------------------------------------------------
    def read(self, topics: list[str], *, strict: bool = True) -> dict[str, list[tuple[float, float, Any]]]:
        """topic -> [(stamp, bag_time, message)] sorted by stamp, for `topics` (one the bag lacks: []).

        stamp: the header stamp (the bag's receive time where the message has no header or a zero stamp).
        Counts read are checked against the storage's own and metadata.yaml's: a mismatch raises
        BagCountError (strict) or is logged.
        """
        wanted = [t for t in dict.fromkeys(topics) if t in self.topics]
        out: dict[str, list] = {t: [] for t in topics}
        if not wanted:
            return out
        self.check_types(wanted)
        ts = self.typestore()
        logger.info("%s: message definitions: %s", self.path.name, self.definitions)
        if self.compression == "message":
            from backports import zstd
        read = {t: 0 for t in wanted}
        for storage in self._storages:
            conns = [c for c in storage.connections if c.topic in read]
            if not conns:
                continue
            for conn, t_ns, raw in storage.messages(conns):
                if self.compression == "message":
                    raw = zstd.decompress(raw)
                try:
                    msg = ts.deserialize_cdr(raw, conn.msgtype)
                except Exception as e:
                    fits = self._distros_decoding(raw, conn.msgtype)
                    raise BagError(
                        f"{self.path}: message {read[conn.topic]} on {conn.topic} does not decode as {conn.msgtype} "
                        f"with {self.definitions} ({type(e).__name__}: {e}); the bag was recorded with other "
                        "definitions: " + (f"it decodes with distro={' or '.join(fits)}" if fits else
                                           f"none of {DISTROS} decodes it either; give its .msg file with msg_files=")
                    ) from None
                read[conn.topic] += 1
                bag_t = t_ns * 1e-9
                out[conn.topic].append((_stamp(msg, bag_t), bag_t, msg))
        for name in wanted:
            info, n = self.topics[name], read[name]
            problems = []
            if n != info.count:
                problems.append(f"its storage index says {info.count} (a truncated or damaged file)")
            if info.metadata_count is not None and n != info.metadata_count:
                problems.append(f"the bag metadata says {info.metadata_count} (metadata.yaml is stale)")
            if problems:
                text = (f"{self.path}: read {n} messages on {name} but " + " and ".join(problems) +
                        "; `ros2 bag reindex` rewrites metadata.yaml from the storage, or strict_counts=false reads "
                        "what is there")
                if strict:
                    raise BagCountError(text)
                logger.warning(text)
        logger.info("%s: %s", self.path.name, ", ".join(f"{t} {read[t]}/{self.topics[t].count}" for t in wanted))
        for v in out.values():
            v.sort(key=lambda x: x[0])
        return out

    def close(self) -> None:
        for s in self._storages:
            try:
                s.close()
            except Exception:  # closing a half-opened storage
                pass
        self._storages = []
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "Bag":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
