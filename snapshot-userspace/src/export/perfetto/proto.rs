//! The subset of Perfetto's trace protobuf (`perfetto.protos`, proto2) that the export writes.
//!
//! Field numbers and types are those of Perfetto's `protos/perfetto/trace/trace.proto`,
//! `trace_packet.proto`, `clock_snapshot.proto`, `track_event/track_event.proto`,
//! `track_event/track_descriptor.proto`, `track_event/process_descriptor.proto`,
//! `track_event/thread_descriptor.proto`, `track_event/counter_descriptor.proto` and
//! `track_event/debug_annotation.proto` (checked against the `perfetto_trace_pb2` descriptors
//! that the integration test decodes with). Members of a `oneof` are plain optional fields here:
//! the wire format is the same, and the export sets at most one of each.
//! Every field is optional (proto2 presence), so a zero is written when it is set.

/// `perfetto.protos.Trace`: the file is one of these.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Trace {
    /// `packet = 1`.
    #[prost(message, repeated, tag = "1")]
    pub packet: Vec<TracePacket>,
}

/// `perfetto.protos.TracePacket`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TracePacket {
    /// `timestamp = 8`, in the clock of `timestamp_clock_id`.
    #[prost(uint64, optional, tag = "8")]
    pub timestamp: Option<u64>,
    /// `timestamp_clock_id = 58`: a [`BuiltinClock`].
    #[prost(uint32, optional, tag = "58")]
    pub timestamp_clock_id: Option<u32>,
    /// `trusted_packet_sequence_id = 10`.
    #[prost(uint32, optional, tag = "10")]
    pub trusted_packet_sequence_id: Option<u32>,
    /// `sequence_flags = 13`: [`SEQ_INCREMENTAL_STATE_CLEARED`] on the first packet.
    #[prost(uint32, optional, tag = "13")]
    pub sequence_flags: Option<u32>,
    /// `clock_snapshot = 6` (oneof `data`).
    #[prost(message, optional, tag = "6")]
    pub clock_snapshot: Option<ClockSnapshot>,
    /// `track_event = 11` (oneof `data`).
    #[prost(message, optional, tag = "11")]
    pub track_event: Option<TrackEvent>,
    /// `track_descriptor = 60` (oneof `data`).
    #[prost(message, optional, tag = "60")]
    pub track_descriptor: Option<TrackDescriptor>,
}

/// `TracePacket.SequenceFlags.SEQ_INCREMENTAL_STATE_CLEARED`.
pub const SEQ_INCREMENTAL_STATE_CLEARED: u32 = 1;

/// `perfetto.protos.BuiltinClock` (the values used here).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum BuiltinClock {
    /// `BUILTIN_CLOCK_REALTIME = 1`.
    Realtime = 1,
    /// `BUILTIN_CLOCK_BOOTTIME = 6`: `bpf_ktime_get_boot_ns()`, the events' clock.
    Boottime = 6,
}

/// `perfetto.protos.ClockSnapshot`: readings of several clocks at one moment.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClockSnapshot {
    /// `clocks = 1`.
    #[prost(message, repeated, tag = "1")]
    pub clocks: Vec<Clock>,
    /// `primary_trace_clock = 2`.
    #[prost(enumeration = "BuiltinClock", optional, tag = "2")]
    pub primary_trace_clock: Option<i32>,
}

/// `perfetto.protos.ClockSnapshot.Clock`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Clock {
    /// `clock_id = 1`: a [`BuiltinClock`].
    #[prost(uint32, optional, tag = "1")]
    pub clock_id: Option<u32>,
    /// `timestamp = 2`, ns.
    #[prost(uint64, optional, tag = "2")]
    pub timestamp: Option<u64>,
}

/// `perfetto.protos.TrackEvent.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum TrackEventType {
    /// `TYPE_SLICE_BEGIN = 1`.
    SliceBegin = 1,
    /// `TYPE_SLICE_END = 2`: ends the innermost open slice of the track.
    SliceEnd = 2,
    /// `TYPE_INSTANT = 3`.
    Instant = 3,
    /// `TYPE_COUNTER = 4`.
    Counter = 4,
}

/// `perfetto.protos.TrackEvent`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TrackEvent {
    /// `type = 9`: a [`TrackEventType`].
    #[prost(enumeration = "TrackEventType", optional, tag = "9")]
    pub r#type: Option<i32>,
    /// `track_uuid = 11`: the [`TrackDescriptor::uuid`] of its track.
    #[prost(uint64, optional, tag = "11")]
    pub track_uuid: Option<u64>,
    /// `name = 23` (oneof `name_field`).
    #[prost(string, optional, tag = "23")]
    pub name: Option<String>,
    /// `categories = 22`.
    #[prost(string, repeated, tag = "22")]
    pub categories: Vec<String>,
    /// `debug_annotations = 4`: the arguments shown with the event.
    #[prost(message, repeated, tag = "4")]
    pub debug_annotations: Vec<DebugAnnotation>,
    /// `counter_value = 30` (oneof `counter_value_field`), for [`TrackEventType::Counter`].
    #[prost(int64, optional, tag = "30")]
    pub counter_value: Option<i64>,
}

/// `perfetto.protos.TrackDescriptor`: declares a track.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TrackDescriptor {
    /// `uuid = 1`.
    #[prost(uint64, optional, tag = "1")]
    pub uuid: Option<u64>,
    /// `parent_uuid = 5`.
    #[prost(uint64, optional, tag = "5")]
    pub parent_uuid: Option<u64>,
    /// `name = 2` (oneof `static_or_dynamic_name`).
    #[prost(string, optional, tag = "2")]
    pub name: Option<String>,
    /// `process = 3`: makes this a process track.
    #[prost(message, optional, tag = "3")]
    pub process: Option<ProcessDescriptor>,
    /// `thread = 4`: makes this a thread track.
    #[prost(message, optional, tag = "4")]
    pub thread: Option<ThreadDescriptor>,
    /// `counter = 8`: makes this a counter track.
    #[prost(message, optional, tag = "8")]
    pub counter: Option<CounterDescriptor>,
}

/// `perfetto.protos.ProcessDescriptor`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProcessDescriptor {
    /// `pid = 1` (int32).
    #[prost(int32, optional, tag = "1")]
    pub pid: Option<i32>,
    /// `process_name = 6`.
    #[prost(string, optional, tag = "6")]
    pub process_name: Option<String>,
}

/// `perfetto.protos.ThreadDescriptor`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ThreadDescriptor {
    /// `pid = 1` (int32).
    #[prost(int32, optional, tag = "1")]
    pub pid: Option<i32>,
    /// `tid = 2` (int64).
    #[prost(int64, optional, tag = "2")]
    pub tid: Option<i64>,
    /// `thread_name = 5`.
    #[prost(string, optional, tag = "5")]
    pub thread_name: Option<String>,
}

/// `perfetto.protos.CounterDescriptor.Unit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum CounterUnit {
    /// `UNIT_COUNT = 2`.
    Count = 2,
}

/// `perfetto.protos.CounterDescriptor`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CounterDescriptor {
    /// `unit = 3`: a [`CounterUnit`].
    #[prost(enumeration = "CounterUnit", optional, tag = "3")]
    pub unit: Option<i32>,
}

/// `perfetto.protos.DebugAnnotation`: one named argument; set one of the values.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DebugAnnotation {
    /// `name = 10` (oneof `name_field`).
    #[prost(string, optional, tag = "10")]
    pub name: Option<String>,
    /// `uint_value = 3` (oneof `value`).
    #[prost(uint64, optional, tag = "3")]
    pub uint_value: Option<u64>,
    /// `int_value = 4` (oneof `value`).
    #[prost(int64, optional, tag = "4")]
    pub int_value: Option<i64>,
    /// `string_value = 6` (oneof `value`).
    #[prost(string, optional, tag = "6")]
    pub string_value: Option<String>,
    /// `pointer_value = 7` (oneof `value`): shown in hex.
    #[prost(uint64, optional, tag = "7")]
    pub pointer_value: Option<u64>,
}
