//! What a TCP_RR run does: one options type for `vprobe rr`, scripts'
//! `tcp_rr(#{..})` and library callers alike, with one validation.

use std::time::Duration;

use super::protocol::{check_streams, Hello, MAX_MESSAGE, MAX_STREAMS};
#[cfg(doc)]
use super::{start, RrHandle, SlowTransaction};

/// What a TCP_RR client run does; where it runs is given to [`start`].
///
/// The defaults are netperf's: one stream, 1-byte request and response, 10 s,
/// no warm-up; thresholds 200 ms and 400 ms (TCP's minimum RTO and its first
/// backoff: a transaction that met one or two losses). A `duration` of `None`
/// runs until [`RrHandle::stop`]. Transactions at or above the smallest
/// threshold are also kept as [`SlowTransaction`]s; without thresholds none
/// are. With the `clap` feature these are also `vprobe rr`'s flags, and the
/// fields' docs their `--help` text.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct RrOptions {
    /// Concurrent streams (TCP connections), each with one transaction in flight.
    #[cfg_attr(
        feature = "clap",
        arg(short = 'n', long, default_value_t = 1, value_name = "N")
    )]
    pub streams: usize,

    /// How long to measure, after the warm-up: 500ms, 10s, 2m.
    #[cfg_attr(
        feature = "clap",
        arg(short = 'd', long, default_value = "10s", value_parser = vprobe_time::duration::parse)
    )]
    pub duration: Option<Duration>,

    /// Run this long first without counting (connections and caches warm up).
    #[cfg_attr(
        feature = "clap",
        arg(short = 'w', long, default_value = "0s", value_parser = vprobe_time::duration::parse)
    )]
    pub warmup: Duration,

    /// Bytes per request.
    #[cfg_attr(
        feature = "clap",
        arg(short = 'r', long, default_value_t = 1, value_name = "BYTES")
    )]
    pub request_size: usize,

    /// Bytes per response.
    #[cfg_attr(
        feature = "clap",
        arg(short = 'R', long, default_value_t = 1, value_name = "BYTES")
    )]
    pub response_size: usize,

    /// Count transactions taking at least this long (repeatable; default 200ms and 400ms,
    /// TCP's minimum retransmission timeout and its first backoff).
    #[cfg_attr(
        feature = "clap",
        arg(
            short = 't',
            long = "threshold",
            value_name = "DURATION",
            value_parser = vprobe_time::duration::parse,
            // those of default_thresholds(); a test keeps them in step
            default_values = ["200ms", "400ms"],
            hide_default_value = true
        )
    )]
    pub thresholds: Vec<Duration>,

    /// Give up on a connection (or its hello) after this long.
    #[cfg_attr(
        feature = "clap",
        arg(long, default_value = "5s", value_parser = vprobe_time::duration::parse)
    )]
    pub connect_timeout: Duration,

    /// Pin the streams to these CPUs, round robin: 0,1 or 0-3.
    // The path spelled out: clap would take a plain `Vec` for repeated values
    // and ask the parser for one CPU each; this flag is one list.
    #[cfg_attr(
        feature = "clap",
        arg(
            long,
            value_name = "LIST",
            value_parser = parse_cpus,
            default_value = "",
            hide_default_value = true
        )
    )]
    pub cpus: ::std::vec::Vec<usize>,
}

impl Default for RrOptions {
    fn default() -> RrOptions {
        RrOptions {
            streams: 1,
            duration: Some(Duration::from_secs(10)),
            warmup: Duration::ZERO,
            request_size: 1,
            response_size: 1,
            thresholds: default_thresholds(),
            connect_timeout: Duration::from_secs(5),
            cpus: Vec::new(),
        }
    }
}

impl RrOptions {
    /// Checks every option against the protocol's limits; [`start`] does too.
    pub fn validate(&self) -> Result<(), OptionsError> {
        check_streams(self.streams)?;
        self.hello().check()?;
        for t in &self.thresholds {
            if t.is_zero() || t.subsec_nanos() % 1000 != 0 {
                return Err(OptionsError::Threshold(*t));
            }
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return Err(OptionsError::ZeroDuration);
        }
        if self.connect_timeout.is_zero() {
            return Err(OptionsError::ZeroConnectTimeout);
        }
        Ok(())
    }

    /// The hello each connection of the run begins with.
    pub fn hello(&self) -> Hello {
        Hello {
            request_size: self.request_size,
            response_size: self.response_size,
        }
    }
}

/// 200 ms and 400 ms.
pub fn default_thresholds() -> Vec<Duration> {
    vec![Duration::from_millis(200), Duration::from_millis(400)]
}

/// A CPU list as `--cpus` takes it: `0,2-3` → [0, 2, 3]; empty: none.
pub fn parse_cpus(s: &str) -> Result<Vec<usize>, OptionsError> {
    let mut cpus = Vec::new();
    if s.is_empty() {
        return Ok(cpus);
    }
    for part in s.split(',').map(str::trim) {
        let bad = || OptionsError::Cpus(s.to_string());
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let (a, b): (usize, usize) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if a > b || b >= 4096 {
            return Err(bad());
        }
        cpus.extend(a..=b);
    }
    Ok(cpus)
}

/// An option out of range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// Not 1 to [`MAX_STREAMS`] streams.
    #[error("streams must be 1 to {max}, not {0}", max = MAX_STREAMS)]
    Streams(usize),
    /// A request or response not 1 to [`MAX_MESSAGE`] bytes.
    #[error("{what} must be 1 to {max} bytes, not {size}", max = MAX_MESSAGE)]
    MessageSize {
        /// `request size` or `response size`.
        what: &'static str,
        /// The size asked for.
        size: usize,
    },
    /// A threshold of zero, or not a whole number of µs.
    #[error("threshold {0:?} must be a positive whole number of microseconds")]
    Threshold(Duration),
    /// A duration of zero.
    #[error("duration must be positive")]
    ZeroDuration,
    /// A connect timeout of zero.
    #[error("connect timeout must be positive")]
    ZeroConnectTimeout,
    /// A CPU list that does not parse.
    #[error("invalid CPU list `{0}`: expected e.g. `0,2-3`")]
    Cpus(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        RrOptions::default().validate().unwrap();
    }

    #[test]
    fn every_limit_is_checked() {
        let with = |f: fn(&mut RrOptions)| {
            let mut o = RrOptions::default();
            f(&mut o);
            o.validate()
        };
        assert_eq!(with(|o| o.streams = 0), Err(OptionsError::Streams(0)));
        assert_eq!(
            with(|o| o.streams = MAX_STREAMS + 1),
            Err(OptionsError::Streams(MAX_STREAMS + 1))
        );
        with(|o| o.streams = MAX_STREAMS).unwrap();
        with(|o| o.response_size = MAX_MESSAGE).unwrap();
        let e = with(|o| o.request_size = MAX_MESSAGE + 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "request size must be 1 to 16777216 bytes, not {}",
                MAX_MESSAGE + 1
            )
        );
        assert!(matches!(
            with(|o| o.thresholds = vec![Duration::from_nanos(1500)]),
            Err(OptionsError::Threshold(_))
        ));
        with(|o| o.thresholds.clear()).unwrap();
        assert_eq!(
            with(|o| o.duration = Some(Duration::ZERO)),
            Err(OptionsError::ZeroDuration)
        );
        with(|o| o.duration = None).unwrap();
        assert_eq!(
            with(|o| o.connect_timeout = Duration::ZERO),
            Err(OptionsError::ZeroConnectTimeout)
        );
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpus("0,2-3").unwrap(), [0, 2, 3]);
        assert_eq!(parse_cpus("").unwrap(), [0usize; 0]);
        for bad in ["3-1", "x", "0,", "4096"] {
            assert_eq!(parse_cpus(bad), Err(OptionsError::Cpus(bad.into())));
        }
    }

    #[cfg(feature = "clap")]
    mod flags {
        use clap::Parser;

        use super::*;

        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            options: RrOptions,
        }

        fn parse(args: &[&str]) -> RrOptions {
            let argv = std::iter::once("rr").chain(args.iter().copied());
            Cli::try_parse_from(argv).unwrap().options
        }

        #[test]
        fn no_flags_are_the_defaults() {
            assert_eq!(parse(&[]), RrOptions::default());
        }

        #[test]
        fn flags_set_the_options() {
            let o = parse(&[
                "-n",
                "16",
                "-d",
                "2s",
                "-w",
                "1s",
                "-r",
                "64",
                "-R",
                "1024",
                "-t",
                "1ms",
                "--connect-timeout",
                "1s",
            ]);
            assert_eq!(
                o,
                RrOptions {
                    streams: 16,
                    duration: Some(Duration::from_secs(2)),
                    warmup: Duration::from_secs(1),
                    request_size: 64,
                    response_size: 1024,
                    thresholds: vec![Duration::from_millis(1)],
                    connect_timeout: Duration::from_secs(1),
                    cpus: Vec::new(),
                }
            );
        }

        /// `--cpus 0-1` panicked: clap read the list back as single CPUs.
        #[test]
        fn cpus_flag_is_one_list() {
            assert_eq!(parse(&["--cpus", "0,2-3"]).cpus, [0, 2, 3]);
        }
    }
}
