"""Decodes a Perfetto trace with Perfetto's own schema and prints a JSON summary.

Usage: perfetto_check.py TRACE

Run by the `engine` integration test with the virtualenv that `cargo xtask setup` installs
(the `perfetto` package ships the compiled `perfetto_trace_pb2`); the test asserts on the
summary against the snapshot the trace was exported from.
"""

import json
import sys

from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

TYPES = {v: k for k, v in pb.TrackEvent.Type.items()}


def value(a):
    """The value of a debug annotation, whichever member of its oneof is set."""
    kind = a.WhichOneof("value")
    return getattr(a, kind) if kind else None


def main(path):
    trace = pb.Trace()
    with open(path, "rb") as f:
        trace.ParseFromString(f.read())

    tracks = {}
    threads, processes, counters = [], [], {}
    sequence_ids, clock_ids, timestamps = set(), set(), []
    slices = {"begin": 0, "end": 0}
    track_slices = []  # slices on other tracks than threads': name, track, begin and end
    thread_instants = 0
    triggers = []
    undeclared = 0
    for p in trace.packet:
        sequence_ids.add(p.trusted_packet_sequence_id)
        if p.HasField("track_descriptor"):
            d = p.track_descriptor
            tracks[d.uuid] = d
            if d.HasField("thread"):
                threads.append({"uuid": d.uuid, "pid": d.thread.pid, "tid": d.thread.tid,
                                "name": d.thread.thread_name, "parent": d.parent_uuid})
            elif d.HasField("process"):
                processes.append({"uuid": d.uuid, "pid": d.process.pid,
                                  "name": d.process.process_name})
            elif d.HasField("counter"):
                counters[d.uuid] = {"name": d.name, "parent": d.parent_uuid, "values": []}
        if p.HasField("track_event"):
            e = p.track_event
            clock_ids.add(p.timestamp_clock_id)
            timestamps.append(p.timestamp)
            track = tracks.get(e.track_uuid)
            if track is None:
                undeclared += 1
                continue
            kind = TYPES[e.type]
            on_thread = track.HasField("thread")
            if kind == "TYPE_SLICE_BEGIN" and on_thread:
                slices["begin"] += 1
            elif kind == "TYPE_SLICE_END" and on_thread:
                slices["end"] += 1
            elif kind == "TYPE_SLICE_BEGIN":
                track_slices.append({"name": e.name, "track": track.name, "begin": p.timestamp,
                                     "end": None})
            elif kind == "TYPE_SLICE_END":
                open_ = [s for s in track_slices if s["end"] is None]
                if open_:
                    open_[-1]["end"] = p.timestamp
            elif kind == "TYPE_INSTANT" and on_thread:
                thread_instants += 1
            elif kind == "TYPE_INSTANT":
                triggers.append({"name": e.name, "track": track.name, "ts": p.timestamp,
                                 "annotations": {a.name: value(a)
                                                 for a in e.debug_annotations}})
            elif kind == "TYPE_COUNTER" and e.track_uuid in counters:
                counters[e.track_uuid]["values"].append(e.counter_value)
    print(json.dumps({
        "packets": len(trace.packet),
        "first_sequence_flags": trace.packet[0].sequence_flags if trace.packet else None,
        "sequence_ids": sorted(sequence_ids),
        "clock_ids": sorted(clock_ids),
        "min_ts": min(timestamps, default=None),
        "max_ts": max(timestamps, default=None),
        "processes": processes,
        "threads": threads,
        "slices": slices,
        "track_slices": track_slices,
        "thread_instants": thread_instants,
        "triggers": triggers,
        "counters": {c["name"]: c for c in counters.values()},
        "undeclared_track_refs": undeclared,
    }))


if __name__ == "__main__":
    main(sys.argv[1])
