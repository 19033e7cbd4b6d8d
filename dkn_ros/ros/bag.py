"""Offline enhancement of rosbag2 recordings, bag to bag (``dkn-ros bag``).

    summary = enhance_bag("in_bag", "out_bag", "/camera/color/image_raw",
                          "/camera/depth/image_raw", "/camera/color/camera_info",
                          enhancer=Enhancer())
    print(summary.format())

The output is a NEW rosbag2 folder holding every connection and message of the input
unchanged (same topics, types, QoS, bag timestamps and bytes) plus, for each
colour/depth pair, ``/<out_prefix>/image`` (sensor_msgs/msg/Image, depth at colour
resolution in the depth input's encoding: 16UC1 mm or 32FC1 m) and
``/<out_prefix>/camera_info`` (the colour camera_info with the output header). Both new
messages carry the colour image's header and are stored at the colour message's bag
timestamp; the image topic is offered with the colour topic's QoS, the camera_info topic
with the input camera_info topic's.

The colour and depth topics may hold sensor_msgs/msg/Image or
sensor_msgs/msg/CompressedImage (image_transport's ``compressed`` JPEG/PNG and
``compressedDepth`` PNG/RVL, as cameras are usually recorded): the type of each topic is
read from the bag and compressed messages are decoded (``dkn_ros.ros.compressed``).

The output is rosbag2 version 9 (Jazzy) unless ``version=8`` (Iron's metadata, for
tools that refuse version 9). In mcap storage every channel carries ``topic_type_hash``
(the RIHS01 type hash, as rosbag2 writes it; ``rosbags`` alone leaves it out).

Colour and depth are paired by header stamps with the same approximate-time pairing as
the live node (``dkn_ros.ros.sync``); offline, every pair is enhanced (nothing is dropped
for being busy). Each message goes through the frame step's message checks
(``dkn_ros.ros.frame_step``, as in the node) when it is read, each pair through its
enhancement: messages that cannot be used (an unsupported encoding, a data array that
does not match its size) and pairs the enhancer refuses (a depth size that is not a
fraction of the colour size, depth without a valid pixel) are skipped and counted by
reason, never fatal. The camera_info of a pair is the one whose stamp equals the colour
stamp, else the closest in time.

rosbag2 files (sqlite3 and mcap storage) are read and written with the ``rosbags``
package; no ROS installation is needed.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rosbags.rosbag2 import CompressionFormat, CompressionMode, Reader, StoragePlugin, Writer
from rosbags.rosbag2.errors import ReaderError, WriterError
from rosbags.rosbag2.storage_mcap import Channel, McapWriter, write_channel, write_string
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from dkn_ros.ros import compressed, frame_step
from dkn_ros.ros.image_codec import image_fields
from dkn_ros.ros.sync import ApproximateTimePairer, Pair, stamp_to_ns

if TYPE_CHECKING:
    from rosbags.interfaces import Connection

    from dkn_ros.enhancer import Enhancer

__all__ = [
    "BAG_VERSIONS",
    "COMPRESSED_TYPE",
    "IMAGE_TYPE",
    "INFO_TYPE",
    "STORAGES",
    "BagSummary",
    "build_image",
    "check_request",
    "enhance_bag",
    "list_topics",
    "output_topics",
    "rosbags_messages",
]

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = compressed.COMPRESSED_TYPE  # sensor_msgs/msg/CompressedImage
INFO_TYPE = "sensor_msgs/msg/CameraInfo"
STORAGES = ("sqlite3", "mcap")
BAG_VERSIONS = (9, 8)  # rosbag2 metadata versions written: 9 = Jazzy, 8 = Iron
_TRANSPORT_NAMES = ("compressed", "compressedDepth")  # image_transport's topic suffixes
DEFAULT_QUEUE_SIZE = 50

_TYPESTORE: Typestore | None = None

#: The pairer's drop reasons (``dkn_ros.ros.sync.DROP_REASONS``) in words.
_UNPAIRED = {
    "unmatched": "without a partner within the slop",
    "late": "stamped before the previous message of its topic",
    "queue_full": "queue full (raise --queue-size)",
    "clock_jump": "dropped when the clock jumped back",
}


def typestore() -> Typestore:
    """The ROS 2 Jazzy typestore (made once)."""
    global _TYPESTORE
    if _TYPESTORE is None:
        _TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
    return _TYPESTORE


# --- summary ---------------------------------------------------------------------------


@dataclass
class BagSummary:
    """What :func:`enhance_bag` did.

    ``dropped`` maps a reason to a count: messages that could not be read, with the
    error text (``bad colour: <error>``, ``bad depth: <error>``: unsupported encoding,
    empty image, data that does not fit the size), colour or depth messages left
    without a partner within the slop (``unpaired colour``, ``unpaired depth``;
    ``unpaired_reasons`` has the pairer's reasons: ``unmatched``, ``late``...) and pairs
    that were found but not enhanced, one count per pair (``bad depth: <error>``: +-Inf,
    negative or no valid depth; ``bad pair: <error>``, e.g. a depth size that is not
    1/s of the colour size; ``camera_info mismatch: ...``). Every colour and depth
    message is in exactly one pair or one ``bad``/``unpaired`` count.
    """

    in_path: Path
    out_path: Path
    storage: str
    color_topic: str
    depth_topic: str
    info_topic: str | None
    image_topic: str
    camera_info_topic: str | None
    messages_copied: int = 0
    color_messages: int = 0
    depth_messages: int = 0
    pairs_found: int = 0
    pairs_enhanced: int = 0
    camera_infos_written: int = 0
    dropped: Counter = field(default_factory=Counter)
    unpaired_reasons: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    enhancer: str = ""
    wall_s: float = 0.0

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    @property
    def mean_latency_ms(self) -> float:
        """Mean processing time of one pair (enhance, encode, write), ms; NaN if none."""
        return float(np.mean(self.latencies_ms)) if self.latencies_ms else float("nan")

    @property
    def p95_latency_ms(self) -> float:
        """95th percentile of the processing time of one pair, ms; NaN if none. Loading
        the weights on the first call is not counted."""
        return float(np.percentile(self.latencies_ms, 95)) if self.latencies_ms else float("nan")

    def format(self) -> str:
        """The multi-line summary that ``dkn-ros bag`` prints."""
        lines = [
            f"dkn-ros bag: {self.in_path} -> {self.out_path} ({self.storage})",
            f"  copied:     {self.messages_copied} messages unchanged",
            f"  colour:     {self.color_messages} on {self.color_topic}",
            f"  depth:      {self.depth_messages} on {self.depth_topic}",
            f"  pairs:      {self.pairs_found} found, {self.pairs_enhanced} enhanced",
            f"  dropped:    {self.dropped_total}",
        ]
        for reason, count in sorted(self.dropped.items(), key=lambda item: (-item[1], item[0])):
            lines.append(f"    {count:>6}  {reason}")
        if self.unpaired_reasons:
            reasons = ", ".join(
                f"{n} {_UNPAIRED.get(why, why)}" for why, n in sorted(self.unpaired_reasons.items())
            )
            lines.append(f"            unpaired because: {reasons}")
        if self.latencies_ms:
            lines.append(
                f"  latency:    mean {self.mean_latency_ms:.1f} ms, p95 {self.p95_latency_ms:.1f} "
                f"ms per pair ({self.enhancer})"
            )
        else:
            lines.append("  latency:    no pair enhanced")
        written = f"{self.pairs_enhanced} on {self.image_topic}"
        if self.camera_info_topic is not None:
            written += f", {self.camera_infos_written} on {self.camera_info_topic}"
            written += f" (from {self.info_topic})"
        else:
            written += " (no camera_info topic: none written)"
        lines.append(f"  wrote:      {written}")
        lines.append(f"  output:     {self.out_path} in {self.wall_s:.1f} s")
        return "\n".join(lines)


# --- opening and checking --------------------------------------------------------------


def _open_reader(in_path: Path) -> Reader:
    """An open Reader, or the user's error naming the path and the problem."""
    if not in_path.exists():
        raise FileNotFoundError(f"{in_path}: input bag not found")
    if in_path.is_dir() and not (in_path / "metadata.yaml").is_file():
        raise ValueError(f"{in_path}: not a rosbag2 folder (it has no metadata.yaml)")
    if not in_path.is_dir() and in_path.suffix not in (".db3", ".mcap"):
        raise ValueError(
            f"{in_path}: not a rosbag2 bag (expected a rosbag2 folder with metadata.yaml, "
            "or a .db3 / .mcap file)"
        )
    try:
        reader = Reader(in_path)
        reader.open()
    except (ReaderError, KeyError, TypeError) as exc:
        raise ValueError(f"{in_path}: not a readable rosbag2 bag ({_one_line(exc)})") from None
    return reader


def _one_line(exc: BaseException) -> str:
    """An exception's text on one line (the CLI prints errors as one line)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _storage_of(in_path: Path) -> str:
    """'sqlite3' or 'mcap': the storage of the input (its metadata's storage_identifier,
    else the data files' suffixes)."""
    if in_path.is_dir():
        from ruamel.yaml import YAML  # a dependency of rosbags

        try:
            metadata = YAML(typ="safe").load((in_path / "metadata.yaml").read_text())
            identifier = metadata["rosbag2_bagfile_information"]["storage_identifier"]
        except Exception:  # the reader has accepted the bag: fall back to the file names
            identifier = None
        if identifier in STORAGES:
            return identifier
    names = [in_path.name] if not in_path.is_dir() else [p.name for p in in_path.iterdir()]
    return "mcap" if any(".mcap" in name for name in names) else "sqlite3"


def list_topics(reader: Reader) -> dict[str, str]:
    """Topic -> message type of an open bag."""
    return {conn.topic: conn.msgtype for conn in reader.connections}


def _describe_topics(topics: dict[str, str]) -> str:
    if not topics:
        return "the bag has no topics"
    return "topics in the bag: " + ", ".join(f"{t} ({m})" for t, m in sorted(topics.items()))


def output_topics(out_prefix: str) -> tuple[str, str]:
    """The fully qualified image and camera_info topics for ``out_prefix``."""
    prefix = out_prefix.strip().strip("/")
    if not prefix or any(not part for part in prefix.split("/")):
        raise ValueError(f"--out-prefix {out_prefix!r}: expected a topic name like depth_enhanced")
    return f"/{prefix}/image", f"/{prefix}/camera_info"


def _normalise_topic(topic: str) -> str:
    return topic if topic.startswith("/") else "/" + topic


def _check_topics(
    in_path: Path,
    topics: dict[str, str],
    color_topic: str,
    depth_topic: str,
    info_topic: str | None,
    out_prefix: str,
) -> tuple[str, str, str | None]:
    """Validated, fully qualified (colour, depth, info) topics; ``info_topic=None`` picks
    ``camera_info`` beside the colour topic when the bag has it."""

    def find(topic: str, role: str, *msgtypes: str) -> str:
        for name in (topic, _normalise_topic(topic)):
            if name in topics:
                if topics[name] not in msgtypes:
                    raise ValueError(
                        f"{in_path}: {role} topic {name} has type {topics[name]}, expected "
                        + " or ".join(msgtypes)
                    )
                return name
        raise ValueError(
            f"{in_path}: {role} topic {topic} is not in the bag; {_describe_topics(topics)}"
        )

    color = find(color_topic, "colour", IMAGE_TYPE, COMPRESSED_TYPE)
    depth = find(depth_topic, "depth", IMAGE_TYPE, COMPRESSED_TYPE)
    if color == depth:
        raise ValueError(f"{in_path}: the colour and depth topics are the same ({color})")
    if info_topic is not None:
        info: str | None = find(info_topic, "camera_info", INFO_TYPE)
    else:
        # beside the image topic: /camera/color/image_raw -> /camera/color/camera_info;
        # a transport topic (/camera/color/image_raw/compressed) counts from its image.
        base = color
        if topics[color] == COMPRESSED_TYPE and color.rsplit("/", 1)[-1] in _TRANSPORT_NAMES:
            base = color.rsplit("/", 1)[0]
        sibling = base.rsplit("/", 1)[0] + "/camera_info"
        info = sibling if topics.get(sibling) == INFO_TYPE else None
    for name in (color, depth):
        if topics[name] == COMPRESSED_TYPE:
            try:
                compressed.require_opencv()
            except ImportError as exc:
                raise ValueError(f"{in_path}: {name} holds {COMPRESSED_TYPE}; {exc}") from None
    for new in output_topics(out_prefix):
        if new in topics:
            raise ValueError(
                f"{in_path}: the output topic {new} is already in the bag; choose another "
                "--out-prefix"
            )
    return color, depth, info


def check_request(
    in_path: str | Path,
    out_path: str | Path,
    color_topic: str,
    depth_topic: str,
    info_topic: str | None = None,
    *,
    out_prefix: str = "depth_enhanced",
    storage: str | None = None,
    version: int = 9,
) -> tuple[str, str, str | None]:
    """Check the user's request without processing anything (cheap: reads the bag's
    metadata only); :func:`enhance_bag` does the same first.

    Returns:
        The fully qualified (colour, depth, camera_info) topics; camera_info is None when
        none was given and no ``camera_info`` topic sits beside the colour topic.

    Raises:
        FileNotFoundError: the input bag does not exist.
        ValueError: the input is not a rosbag2 bag, a topic is missing or of the wrong type
            (the message lists the bag's topics), the output exists already, the storage,
            the bag version or the output prefix is not valid, or a topic holds
            CompressedImage and OpenCV is not installed.
    """
    in_path, out_path = Path(in_path), Path(out_path)
    if storage is not None and storage not in STORAGES:
        raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    if version not in BAG_VERSIONS:
        raise ValueError(
            f"bag version must be one of {', '.join(map(str, BAG_VERSIONS))}, got {version!r}"
        )
    output_topics(out_prefix)
    reader = _open_reader(in_path)
    try:
        topics = list_topics(reader)
    finally:
        reader.close()
    checked = _check_topics(in_path, topics, color_topic, depth_topic, info_topic, out_prefix)
    if out_path.exists() or out_path.is_symlink():
        raise ValueError(f"{out_path}: the output exists already; give a new path")
    return checked


# --- writing ---------------------------------------------------------------------------


class _McapWriter(McapWriter):
    """rosbags' mcap storage writer, whose channels also carry ``topic_type_hash`` (the
    connection's RIHS01 hash) beside ``offered_qos_profiles``, as rosbag2's own mcap
    plugin writes them (Iron and later); rosbags 0.11 writes the QoS only."""

    def add_connection(self, connection: Connection, offered_qos_profiles: str) -> None:
        metadata = BytesIO()
        write_string(metadata, "offered_qos_profiles")
        write_string(metadata, offered_qos_profiles)
        if connection.digest:
            write_string(metadata, "topic_type_hash")
            write_string(metadata, connection.digest)
        self.channels.append(
            Channel(
                connection.id,
                connection.msgtype,
                connection.topic,
                connection.ext.serialization_format,
                metadata.getvalue(),
            )
        )
        self.channel_stats[connection.id] = 0
        write_channel(self.chunk.bio, self.channels[-1], self.schemas)


class _Writer(Writer):
    """rosbags' Writer with :class:`_McapWriter` for mcap storage."""

    STORAGE_PLUGINS = {**Writer.STORAGE_PLUGINS, StoragePlugin.MCAP: _McapWriter}


# --- messages --------------------------------------------------------------------------


def _definition(conn: Connection, store: Typestore) -> tuple[str, str]:
    """(message definition, RIHS01 hash) to write ``conn`` with: the bag's own when it
    has them, else the typestore's, else parsed from the bag's definition."""
    msgdef, digest = conn.msgdef.data, conn.digest
    if msgdef and digest:
        return msgdef, digest
    if conn.msgtype in store.types:
        return store.generate_msgdef(conn.msgtype, ros_version=2)[0], store.hash_rihs01(
            conn.msgtype
        )
    if msgdef:
        own = get_typestore(Stores.EMPTY)
        sep = "=" * 80 + "\n"
        if msgdef.startswith(sep + "IDL: "):
            types: dict[str, Any] = {}
            for part in msgdef.split(sep)[1:]:
                types.update(get_types_from_idl(part.split("\n", 1)[1]))
        else:
            types = get_types_from_msg(msgdef, conn.msgtype)
        own.register(types)
        return msgdef, digest or own.hash_rihs01(conn.msgtype)
    raise ValueError(
        f"topic {conn.topic}: type {conn.msgtype} has no message definition in the bag and "
        "is not a ROS 2 Jazzy type; cannot copy it"
    )


def build_image(header: Any, array: np.ndarray, encoding: str, store: Typestore | None = None):
    """A rosbags ``sensor_msgs/msg/Image`` holding ``array`` with ``encoding`` and
    ``header`` (the rosbags counterpart of ``image_codec.numpy_to_image``; the fields
    come from ``image_codec.image_fields``: rows packed, the machine's byte order).

    Raises:
        ImageError: the array does not fit the encoding.
    """
    store = store or typestore()
    return store.types[IMAGE_TYPE](header=header, **image_fields(array, encoding))


@dataclass
class _Decoded:
    """One colour or depth message that passed the frame step's message checks, waiting
    for its partner."""

    bag_ns: int
    msg: Any
    array: np.ndarray  # frame_step.decode_color / decode_depth


def rosbags_messages(store: Typestore | None = None) -> frame_step.MessageFactory:
    """The frame step's output messages as rosbags dataclasses of ``store`` (default: the
    ROS 2 Jazzy typestore); the counterpart of ``frame_step.RCLPY_MESSAGES``."""
    store = store or typestore()
    return frame_step.MessageFactory(
        image=lambda depth, encoding, header: build_image(header, depth, encoding, store),
        camera_info=lambda info, header: dataclasses.replace(info, header=header),
    )


#: Frame step drops of a pair -> the summary's key (the decode drops of single
#: messages are ``bad colour`` / ``bad depth``, see :func:`_copy_and_enhance`).
_PAIR_DROPS = {"camera_info_mismatch": "camera_info mismatch", "invalid_depth": "bad depth",
               "bad_layout": "bad colour"}  # fmt: skip


class _CameraInfos:
    """The camera_info messages of a bag, looked up by header stamp: the exact stamp,
    else the closest one. Identical contents (all but the header) are stored once."""

    def __init__(self, store: Typestore):
        self._store = store
        self._stamps: list[int] = []
        self._which: list[int] = []
        self._distinct: list[Any] = []

    def load(self, reader: Reader, topic: str) -> None:
        connections = [c for c in reader.connections if c.topic == topic]
        empty = self._store.types["std_msgs/msg/Header"](
            stamp=self._store.types["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id=""
        )
        keys: dict[bytes, int] = {}
        entries = []
        for conn, _, raw in reader.messages(connections=connections):
            msg = self._store.deserialize_cdr(raw, conn.msgtype)
            bare = dataclasses.replace(msg, header=empty)
            key = bytes(self._store.serialize_cdr(bare, INFO_TYPE))
            if key not in keys:
                keys[key] = len(self._distinct)
                self._distinct.append(msg)
            entries.append((stamp_to_ns(msg.header.stamp), keys[key]))
        entries.sort()
        self._stamps = [stamp for stamp, _ in entries]
        self._which = [index for _, index in entries]

    def __len__(self) -> int:
        return len(self._stamps)

    def closest(self, stamp_ns: int) -> Any | None:
        if not self._stamps:
            return None
        i = bisect_left(self._stamps, stamp_ns)
        candidates = [j for j in (i - 1, i) if 0 <= j < len(self._stamps)]
        best = min(candidates, key=lambda j: (abs(self._stamps[j] - stamp_ns), -j))
        return self._distinct[self._which[best]]


# --- the bag to bag loop ---------------------------------------------------------------


def enhance_bag(
    in_path: str | Path,
    out_path: str | Path,
    color_topic: str,
    depth_topic: str,
    info_topic: str | None = None,
    *,
    enhancer: Enhancer,
    slop: float = 0.02,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    out_prefix: str = "depth_enhanced",
    storage: str | None = None,
    version: int = 9,
    progress: bool = True,
) -> BagSummary:
    """Enhance the depth of a rosbag2 recording into a new bag.

    Args:
        in_path: the input rosbag2 folder (sqlite3 or mcap storage), or a single
            ``.db3``/``.mcap`` file.
        out_path: the output folder; it must not exist.
        color_topic, depth_topic: sensor_msgs/msg/Image or sensor_msgs/msg/CompressedImage
            topics (the leading ``/`` may be left out; the type is read from the bag).
            Colour: rgb8, bgr8, rgba8, bgra8 or mono8 (compressed: JPEG or PNG); depth:
            16UC1 or mono16 (mm, 0 = invalid) or 32FC1 (m, NaN = invalid) (compressedDepth:
            PNG or RVL).
        info_topic: the colour camera's sensor_msgs/msg/CameraInfo topic; None:
            ``camera_info`` beside the colour topic if the bag has it (beside its image
            topic for ``.../image_raw/compressed``), else no camera_info is written.
        enhancer: the :class:`dkn_ros.enhancer.Enhancer` to use, with
            ``color_order="rgb"`` (colour is converted to RGB from its encoding).
        slop: the largest stamp difference of a pair, seconds.
        queue_size: messages kept per stream while waiting for a partner.
        out_prefix: the new topics are ``/<out_prefix>/image`` and
            ``/<out_prefix>/camera_info``.
        storage: ``"sqlite3"`` or ``"mcap"``; None: the input's.
        version: the rosbag2 metadata version written: 9 (Jazzy) or 8 (Iron).
        progress: show a progress bar over the messages (tqdm, on stderr).

    Returns:
        A :class:`BagSummary`.

    Raises:
        FileNotFoundError, ValueError: the user's errors (see :func:`check_request`),
            found before anything is written. If processing fails for another reason
            (or is interrupted), the partial output folder is removed.
    """
    started = time.perf_counter()
    in_path, out_path = Path(in_path), Path(out_path)
    color_topic, depth_topic, info_topic = check_request(
        in_path,
        out_path,
        color_topic,
        depth_topic,
        info_topic,
        out_prefix=out_prefix,
        storage=storage,
        version=version,
    )
    if getattr(enhancer, "color_order", "rgb") != "rgb":
        raise ValueError("enhance_bag gives the enhancer RGB colour: use color_order='rgb'")
    pairer = ApproximateTimePairer(queue_size=queue_size, slop=slop)
    image_topic, camera_info_topic = output_topics(out_prefix)
    summary = BagSummary(
        in_path=in_path,
        out_path=out_path,
        storage=storage or _storage_of(in_path),
        color_topic=color_topic,
        depth_topic=depth_topic,
        info_topic=info_topic,
        image_topic=image_topic,
        camera_info_topic=camera_info_topic if info_topic is not None else None,
    )
    reader = _open_reader(in_path)
    try:
        plugin = StoragePlugin.MCAP if summary.storage == "mcap" else StoragePlugin.SQLITE3
        writer = _Writer(out_path, version=version, storage_plugin=plugin)
        mode = reader.compression_mode  # keep the input's zstd file/message compression
        if mode in ("file", "message") and reader.compression_format == "zstd":
            writer.set_compression(CompressionMode[mode.upper()], CompressionFormat.ZSTD)
        writer.open()
    except WriterError as exc:
        reader.close()
        raise ValueError(f"{out_path}: cannot write the output bag ({exc})") from None
    try:
        try:
            _copy_and_enhance(reader, writer, pairer, enhancer, summary, progress)
        except ReaderError as exc:
            raise ValueError(f"{in_path}: cannot read the bag: {_one_line(exc)}") from None
        writer.close()
    except BaseException:
        writer.abort()
        shutil.rmtree(out_path, ignore_errors=True)
        raise
    finally:
        reader.close()
    summary.wall_s = time.perf_counter() - started
    return summary


def _copy_and_enhance(
    reader: Reader,
    writer: Writer,
    pairer: ApproximateTimePairer,
    enhancer: Enhancer,
    summary: BagSummary,
    progress: bool,
) -> None:
    """The work of :func:`enhance_bag` between opening and closing the bags."""
    from tqdm import tqdm

    store = typestore()
    infos = _CameraInfos(store)
    if summary.info_topic is not None:
        infos.load(reader, summary.info_topic)

    # Every input connection, as it is; then the two new ones, offered with the QoS of
    # the colour topic (image) and of the camera_info topic (camera_info).
    out_connections: dict[int, Any] = {}
    added: dict[tuple[str, str, str], Any] = {}
    color_qos: list = []
    info_qos: list = []
    for conn in reader.connections:
        key = (conn.topic, conn.msgtype, repr(conn.ext))  # the writer accepts each once
        if key not in added:
            try:
                msgdef, digest = _definition(conn, store)
            except ValueError as exc:
                raise ValueError(f"{summary.in_path}: {exc}") from None
            added[key] = writer.add_connection(
                conn.topic,
                conn.msgtype,
                msgdef=msgdef,
                rihs01=digest,
                serialization_format=conn.ext.serialization_format,
                offered_qos_profiles=conn.ext.offered_qos_profiles,
            )
        out_connections[conn.id] = added[key]
        if conn.topic == summary.color_topic and not color_qos:
            color_qos = list(conn.ext.offered_qos_profiles)
        if conn.topic == summary.info_topic and not info_qos:
            info_qos = list(conn.ext.offered_qos_profiles)
    image_conn = writer.add_connection(
        summary.image_topic, IMAGE_TYPE, typestore=store, offered_qos_profiles=color_qos
    )
    info_conn = None
    if summary.camera_info_topic is not None:
        info_conn = writer.add_connection(
            summary.camera_info_topic, INFO_TYPE, typestore=store, offered_qos_profiles=info_qos
        )

    messages = rosbags_messages(store)

    def enhance(pair: Pair, bar: tqdm) -> None:
        color, depth = pair.color, pair.depth
        summary.pairs_found += 1
        tick = time.perf_counter()
        try:
            # With an info topic every image gets its camera_info: one of another size
            # than the colour image drops the pair (the node's require_camera_info).
            info = infos.closest(pair.color_stamp_ns)
            info = frame_step.camera_info_for(
                info, color.array.shape, require_camera_info=info is not None,
                info_topic=summary.info_topic,
            )  # fmt: skip
            frame = frame_step.Frame(color.msg, depth.msg, color.array, depth.array, info)
            out = frame_step.enhance(enhancer, frame, messages)
        except frame_step.Drop as drop:
            summary.dropped[f"{_PAIR_DROPS.get(drop.reason, 'bad pair')}: {drop.text}"] += 1
            return
        except ValueError as exc:  # not bad input, but not a reason to stop the bag
            summary.dropped[f"bad pair: {_one_line(exc)}"] += 1
            return
        load_ms = enhancer.last_timings.load_ms  # the first call loads the weights
        writer.write(image_conn, color.bag_ns, store.serialize_cdr(out.image, IMAGE_TYPE))
        if out.camera_info is not None and info_conn is not None:
            raw = store.serialize_cdr(out.camera_info, INFO_TYPE)
            writer.write(info_conn, color.bag_ns, raw)
            summary.camera_infos_written += 1
        summary.latencies_ms.append((time.perf_counter() - tick) * 1e3 - load_ms)
        summary.pairs_enhanced += 1
        bar.set_postfix(enhanced=summary.pairs_enhanced, refresh=False)

    streams = {summary.color_topic: 0, summary.depth_topic: 1}
    with tqdm(
        total=reader.message_count, unit="msg", disable=not progress, desc="dkn-ros bag"
    ) as bar:
        for conn, bag_ns, raw in reader.messages():
            writer.write(out_connections[conn.id], bag_ns, raw)
            summary.messages_copied += 1
            bar.update()
            stream = streams.get(conn.topic)
            if stream is None:
                continue
            role = "colour" if stream == 0 else "depth"
            if stream == 0:
                summary.color_messages += 1
            else:
                summary.depth_messages += 1
            try:
                msg = store.deserialize_cdr(raw, conn.msgtype)
            except Exception as exc:  # a corrupt CDR buffer is one bad message, not fatal
                summary.dropped[f"bad {role}: cannot deserialise ({type(exc).__name__})"] += 1
                continue
            decode = frame_step.decode_color if stream == 0 else frame_step.decode_depth
            try:
                frame_step.check_stamp(msg)  # a negative stamp cannot be paired by time
                msg = frame_step.to_image(msg, role)  # decodes a CompressedImage
                array = decode(msg)
            except frame_step.Drop as drop:
                # "bad colour: rgb8 image data is too short...": the key names the image
                summary.dropped[f"bad {role}: {drop.text.removeprefix(f'{role} image: ')}"] += 1
                continue
            decoded = _Decoded(bag_ns, msg, array)
            for pair in pairer.add(stream, stamp_to_ns(msg.header.stamp), decoded):
                enhance(pair, bar)
        for pair in pairer.flush():
            enhance(pair, bar)

    stats = pairer.stats
    for stream, role in ((0, "colour"), (1, "depth")):
        if stats["dropped_per_stream"][stream]:
            summary.dropped[f"unpaired {role}"] += stats["dropped_per_stream"][stream]
    summary.unpaired_reasons = {k: v for k, v in stats["dropped"].items() if v}
    summary.enhancer = enhancer.describe()
