//! The virtual network: how long a message takes and whether it arrives.
//!
//! Each message independently draws a one-way latency (constant, or uniform in a range) and is
//! lost with probability `loss`, from the simulation's single seeded generator, so the network
//! is part of what a seed replays.

use rand::RngExt;
use rand_pcg::Pcg64;

use crate::engine::Time;
use crate::SimError;

/// One-way message latency, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Latency {
    Constant(Time),
    /// Uniform over [lo, hi].
    Uniform(Time, Time),
}

impl Latency {
    /// Parses milliseconds: `"20"` (constant) or `"5..50"` (uniform), fractions allowed.
    pub fn parse(s: &str) -> Result<Latency, SimError> {
        let ms = |x: &str| -> Result<Time, SimError> {
            let v: f64 = x.trim().parse().map_err(|_| {
                SimError::Arg(format!("latency {s:?}: expected ms like 20 or 5..50"))
            })?;
            if !(0.0..=3_600_000.0).contains(&v) {
                return Err(SimError::Arg(format!("latency {s:?} is out of range")));
            }
            Ok((v * 1000.0).round() as Time)
        };
        match s.split_once("..") {
            None => Ok(Latency::Constant(ms(s)?)),
            Some((a, b)) => {
                let (lo, hi) = (ms(a)?, ms(b)?);
                if lo > hi {
                    return Err(SimError::Arg(format!(
                        "latency {s:?}: low end above high end"
                    )));
                }
                Ok(Latency::Uniform(lo, hi))
            }
        }
    }

    pub fn max(self) -> Time {
        match self {
            Latency::Constant(t) | Latency::Uniform(_, t) => t,
        }
    }

    fn sample(self, rng: &mut Pcg64) -> Time {
        match self {
            Latency::Constant(t) => t,
            Latency::Uniform(lo, hi) => rng.random_range(lo..=hi),
        }
    }
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |t: Time| t as f64 / 1000.0;
        match *self {
            Latency::Constant(t) => write!(f, "{} ms", ms(t)),
            Latency::Uniform(lo, hi) => write!(f, "uniform {}..{} ms", ms(lo), ms(hi)),
        }
    }
}

/// Latency and loss of every link (the network is a full mesh with identical links).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetModel {
    pub latency: Latency,
    pub loss: f64,
}

impl NetModel {
    pub fn new(latency: Latency, loss: f64) -> Result<NetModel, SimError> {
        if !(0.0..1.0).contains(&loss) {
            return Err(SimError::Arg(format!(
                "loss {loss} is out of range: it must be in [0, 1)"
            )));
        }
        Ok(NetModel { latency, loss })
    }

    /// The delay of one message, or `None` when it is lost.
    pub fn transit(&self, rng: &mut Pcg64) -> Option<Time> {
        if self.loss > 0.0 && rng.random_bool(self.loss) {
            return None;
        }
        Some(self.latency.sample(rng))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn latency_parses_constant_and_ranges_in_ms() {
        assert_eq!(Latency::parse("20").unwrap(), Latency::Constant(20_000));
        assert_eq!(
            Latency::parse("0.5..50").unwrap(),
            Latency::Uniform(500, 50_000)
        );
        assert!(Latency::parse("50..5").is_err());
        assert!(Latency::parse("fast").is_err());
        assert!(NetModel::new(Latency::Constant(1), 1.0).is_err());
    }

    #[test]
    fn transit_stays_in_range_and_loses_about_the_loss_rate() {
        let net = NetModel::new(Latency::Uniform(10, 20), 0.25).unwrap();
        let mut rng = Pcg64::seed_from_u64(7);
        let mut lost = 0;
        for _ in 0..10_000 {
            match net.transit(&mut rng) {
                Some(t) => assert!((10..=20).contains(&t)),
                None => lost += 1,
            }
        }
        assert!((2_200..2_800).contains(&lost), "lost {lost}");
    }
}
