//! Property loops over the decoders a peer's bytes meet on a worker connection: the
//! length-delimited codec (at the pre-handshake limit, then raised after a hello as the accept
//! side does) and the frame decoder (tag, then a handshake message or a data body).
//!
//! Inputs are proptest-generated: random bytes (some led by a random declared length) and
//! streams of valid encoded frames with random mutations, fed in random read sizes. Every case
//! must decode without panicking, and before the handshake must allocate no more than a bound
//! that depends on the input's length and [`MAX_HANDSHAKE_FRAME`], never on a declared length.
//! The loop runs for [`DEFAULT_SECS`] in `cargo test`, or `TEMPEST_FUZZ_SECS` seconds; it prints
//! the seed (`TEMPEST_FUZZ_SEED` replays it) and the number of cases.

use crate::frame::{codec, decode_frame, handshake_frame, Frame, Handshake, Lane, MAX_FRAME};
use crate::frame::{data_frame_start, MAX_HANDSHAKE_FRAME};
use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};
use tokio_util::codec::{Decoder, Encoder};

/// Seconds each loop runs in a plain `cargo test`.
const DEFAULT_SECS: u64 = 2;

/// The system allocator, counting the bytes each thread holds and the most it held.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call goes to `System` unchanged; the counters are const-initialised
// thread-locals without destructors, so touching them never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Runs `f`; the most bytes this thread held meanwhile beyond what it held before.
fn peak_allocation(f: impl FnOnce()) -> usize {
    let before = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(before));
    f();
    (PEAK.with(Cell::get) - before).max(0) as usize
}

/// The most a connection may allocate before its handshake, for `input_len` bytes received:
/// the read buffer (growth doubles, so twice the input or a frame), plus the decoded message
/// (at most a frame). A declared length does not enter into it.
fn pre_auth_bound(input_len: usize) -> usize {
    2 * (input_len + 4 + MAX_HANDSHAKE_FRAME) + MAX_HANDSHAKE_FRAME + 4096
}

/// What a connection's decoders made of an input.
#[derive(Debug, Default)]
struct Decoded {
    frames: usize,
    /// The bytes received before a hello raised the limit (all of them if none did).
    pre_auth_bytes: usize,
    /// The most allocated before the limit was raised.
    pre_auth_peak: usize,
    closed: Option<String>,
}

/// Feeds `input` to a new connection's decoders in reads of `read_size` bytes, as `FramedRead`
/// does, stopping at the first error (which closes a real connection). With `authenticate`, a
/// hello raises the limit to [`MAX_FRAME`] (the accept side does after checking it).
fn decode_connection(input: &[u8], read_size: usize, authenticate: bool) -> Decoded {
    let mut decoded = Decoded::default();
    let mut codec = codec(MAX_HANDSHAKE_FRAME);
    let mut buffer = BytesMut::new();
    let mut received = 0;
    let mut authenticated = false;
    let before = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(before));
    'reads: for read in input.chunks(read_size.max(1)) {
        buffer.extend_from_slice(read);
        received += read.len();
        loop {
            match codec.decode(&mut buffer) {
                Ok(Some(frame)) => {
                    decoded.frames += 1;
                    match decode_frame(frame) {
                        Ok(Frame::Handshake(Handshake::Hello { .. })) if authenticate => {
                            if !authenticated {
                                authenticated = true;
                                decoded.pre_auth_bytes = received;
                                decoded.pre_auth_peak =
                                    (PEAK.with(Cell::get) - before).max(0) as usize;
                                codec.set_max_frame_length(MAX_FRAME);
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            decoded.closed = Some(e.to_string());
                            break 'reads;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    decoded.closed = Some(e.to_string());
                    break 'reads;
                }
            }
        }
    }
    if decoded.closed.is_none() {
        if let Err(e) = codec.decode_eof(&mut buffer) {
            decoded.closed = Some(e.to_string());
        }
    }
    if !authenticated {
        decoded.pre_auth_bytes = received;
        decoded.pre_auth_peak = (PEAK.with(Cell::get) - before).max(0) as usize;
    }
    decoded
}

/// Checks one input at several read sizes, with and without a hello raising the limit.
fn check(input: &[u8], read_size: usize) {
    for (read_size, authenticate) in [(read_size, false), (input.len(), false), (read_size, true)] {
        let decoded = decode_connection(input, read_size, authenticate);
        let bound = pre_auth_bound(decoded.pre_auth_bytes);
        assert!(
            decoded.pre_auth_peak <= bound,
            "{} bytes allocated before the handshake for {} bytes received (bound {bound}): {decoded:?}",
            decoded.pre_auth_peak,
            decoded.pre_auth_bytes
        );
    }
}

fn lane() -> impl Strategy<Value = Lane> {
    prop_oneof![Just(Lane::Data), Just(Lane::Control)]
}

fn handshake() -> impl Strategy<Value = Handshake> {
    let text = || {
        prop_oneof![
            ".{0,40}",
            vec(any::<char>(), 0..300).prop_map(String::from_iter)
        ]
    };
    prop_oneof![
        (text(), text(), any::<u64>(), text(), lane()).prop_map(
            |(secret, topology, version, from, lane)| Handshake::Hello {
                secret,
                topology,
                version,
                from,
                lane,
            }
        ),
        Just(Handshake::Welcome),
        text().prop_map(|reason| Handshake::Refused { reason }),
    ]
}

/// One frame's bytes as a peer sends them (length included), through the real encoders.
fn encoded_frame() -> impl Strategy<Value = Vec<u8>> {
    let body = prop_oneof![
        3 => handshake().prop_map(|h| handshake_frame(&h).unwrap()),
        1 => vec(any::<u8>(), 0..600).prop_map(|data| {
            let mut frame = data_frame_start();
            frame.extend(data);
            frame
        }),
        1 => vec(any::<u8>(), 0..40),
    ];
    body.prop_map(|body| {
        let mut out = BytesMut::new();
        codec(MAX_FRAME)
            .encode(Bytes::from(body), &mut out)
            .unwrap();
        out.to_vec()
    })
}

/// A change to an input.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize, u8),
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    Truncate(usize),
    /// Overwrites 4 bytes with a declared length.
    Length(usize, u32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let length = prop_oneof![
        any::<u32>(),
        0..(2 * MAX_HANDSHAKE_FRAME as u32),
        Just(MAX_HANDSHAKE_FRAME as u32 + 1),
        Just(MAX_FRAME as u32 + 1),
        Just(u32::MAX),
    ];
    prop_oneof![
        (any::<usize>(), 0..8u8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Set(i, v)),
        (any::<usize>(), vec(any::<u8>(), 1..16)).prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), 1..16usize).prop_map(|(i, n)| Mutation::Remove(i, n)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), length).prop_map(|(i, l)| Mutation::Length(i, l)),
    ]
}

fn mutate(input: &mut Vec<u8>, m: &Mutation) {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    let len = input.len();
    match m {
        Mutation::FlipBit(i, b) if len > 0 => input[at(*i, len)] ^= 1 << b,
        Mutation::Set(i, v) if len > 0 => input[at(*i, len)] = *v,
        Mutation::Insert(i, v) => {
            let i = at(*i, len + 1);
            input.splice(i..i, v.iter().copied());
        }
        Mutation::Remove(i, n) if len > 0 => {
            let i = at(*i, len);
            input.drain(i..(i + n).min(len));
        }
        Mutation::Truncate(n) => input.truncate(at(*n, len + 1)),
        Mutation::Length(i, l) => {
            let i = at(*i, len + 1).min(len.saturating_sub(4));
            if len >= 4 {
                input[i..i + 4].copy_from_slice(&l.to_be_bytes());
            } else {
                input.splice(0..len, l.to_be_bytes());
            }
        }
        _ => {}
    }
}

/// Random bytes: short, long, and led by a declared length.
fn random_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..64),
        vec(any::<u8>(), 0..4096),
        (any::<u32>(), vec(any::<u8>(), 0..256)).prop_map(|(l, rest)| {
            let mut out = l.to_be_bytes().to_vec();
            out.extend(rest);
            out
        }),
    ]
}

/// Valid frame streams with mutations.
fn mutated_input() -> impl Strategy<Value = Vec<u8>> {
    (vec(encoded_frame(), 1..5), vec(mutation(), 0..6)).prop_map(|(frames, mutations)| {
        let mut input = frames.concat();
        for m in &mutations {
            mutate(&mut input, m);
        }
        input
    })
}

fn seconds() -> Duration {
    let secs = std::env::var("TEMPEST_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SECS);
    Duration::from_secs(secs)
}

fn seed() -> [u8; 32] {
    let n: u64 = match std::env::var("TEMPEST_FUZZ_SEED") {
        Ok(s) => s.parse().expect("TEMPEST_FUZZ_SEED is a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    };
    let mut seed = [0; 32];
    seed[..8].copy_from_slice(&n.to_le_bytes());
    seed
}

/// Checks inputs from `inputs` until the time is up; the number of cases.
fn fuzz(name: &str, inputs: impl Strategy<Value = Vec<u8>>) -> u64 {
    let seed = seed();
    let seed_number = u64::from_le_bytes(seed[..8].try_into().unwrap());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let read_sizes = prop_oneof![1..8usize, 8..64usize, Just(1 << 20)];
    let cases = (inputs, read_sizes);
    let deadline = Instant::now() + seconds();
    let mut n = 0u64;
    while Instant::now() < deadline {
        let (input, read_size) = cases.new_tree(&mut runner).unwrap().current();
        let outcome = std::panic::catch_unwind(|| check(&input, read_size));
        if let Err(panic) = outcome {
            eprintln!(
                "{name}: case {n} (TEMPEST_FUZZ_SEED={seed_number}) failed; read size {read_size}, input {input:02x?}"
            );
            std::panic::resume_unwind(panic);
        }
        n += 1;
    }
    eprintln!(
        "{name}: {n} cases in {:?} (TEMPEST_FUZZ_SEED={seed_number})",
        seconds()
    );
    n
}

#[test]
fn random_bytes_never_panic_nor_allocate_past_the_bound() {
    assert!(fuzz("random bytes", random_input()) > 0);
}

#[test]
fn mutated_frames_never_panic_nor_allocate_past_the_bound() {
    assert!(fuzz("mutated frames", mutated_input()) > 0);
}

/// The bound is tight enough to see a peer's declared length being buffered: the codec at
/// [`MAX_FRAME`] before the handshake (as before the pre-auth limit) breaks it.
#[test]
fn the_allocation_bound_catches_a_reserved_declared_length() {
    let input = (1u32 << 20).to_be_bytes();
    let mut codec = codec(MAX_FRAME);
    let peak = peak_allocation(|| {
        let mut buffer = BytesMut::from(&input[..]);
        assert!(codec.decode(&mut buffer).unwrap().is_none());
    });
    assert!(peak > pre_auth_bound(input.len()), "{peak}");
    let decoded = decode_connection(&input, 4, false);
    assert!(
        decoded.pre_auth_peak <= pre_auth_bound(input.len()),
        "{decoded:?}"
    );
    assert!(
        decoded.closed.unwrap().contains("frame size too big"),
        "the codec refuses the length"
    );
}
