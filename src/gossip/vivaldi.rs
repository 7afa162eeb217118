//! VIVALDI: this agent's network coordinate, estimated from gossip probe round trips, as
//! Serf's `coordinate.Client` does (the algorithm of Dabek et al., "Vivaldi: A Decentralized
//! Network Coordinate System", with Serf's height, adjustment and gravity terms).
//!
//! Input: `(peer name, peer's coordinate, measured RTT)` from each completed gossip probe
//! (`gossip::memberlist`'s ping delegate carries the coordinates in the probe acks). Output:
//! this agent's `Coordinate` (`Vivaldi::coordinate`), which the agent proposes to the catalog
//! (`gossip::coordinate`), and the payload its own acks carry.
//!
//! Invariants: Serf's defaults (`coordinate.DefaultConfig`): 8 dimensions, error at most 1.5,
//! `CE` = `CC` = 0.25, an adjustment window of 20 samples, a minimum height of 10 µs, a median
//! filter over the last 3 RTTs per peer, gravity `rho` 150; an RTT that is not positive or
//! exceeds 10 s is ignored; a coordinate that turns non-finite resets to the origin.
//!
//! Why not the serf-core crate (al8n's port of Serf on memberlist): it would replace the
//! whole gossip layer (cairn keeps its own member table, keyring and reconnect on memberlist
//! directly; see `gossip`'s module doc), and the Vivaldi client alone is this page.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::catalog::operator::{COORDINATE_DIMENSIONS, Coordinate};

/// Serf's `VivaldiErrorMax`.
const ERROR_MAX: f64 = 1.5;
/// Serf's `VivaldiCE`.
const CE: f64 = 0.25;
/// Serf's `VivaldiCC`.
const CC: f64 = 0.25;
/// Serf's `AdjustmentWindowSize`.
const ADJUSTMENT_WINDOW: usize = 20;
/// Serf's `HeightMin` (seconds).
const HEIGHT_MIN: f64 = 10.0e-6;
/// Serf's `LatencyFilterSize`.
const LATENCY_FILTER: usize = 3;
/// Serf's `GravityRho`.
const GRAVITY_RHO: f64 = 150.0;
/// Below this a vector is treated as zero.
const ZERO: f64 = 1.0e-6;
/// Longest RTT accepted.
const MAX_RTT: Duration = Duration::from_secs(10);

/// A new coordinate: the origin, maximal error, the minimum height.
pub(crate) fn origin() -> Coordinate {
    Coordinate {
        vec: vec![0.0; COORDINATE_DIMENSIONS],
        error: ERROR_MAX,
        adjustment: 0.0,
        height: HEIGHT_MIN,
    }
}

fn magnitude(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Distance between two coordinates in seconds, without adjustments.
fn raw_distance(a: &Coordinate, b: &Coordinate) -> f64 {
    let diff: Vec<f64> = a.vec.iter().zip(&b.vec).map(|(x, y)| x - y).collect();
    magnitude(&diff) + a.height + b.height
}

/// Serf's `DistanceTo`: the raw distance plus both adjustments, unless that is not positive.
pub(crate) fn distance(a: &Coordinate, b: &Coordinate) -> f64 {
    let dist = raw_distance(a, b);
    let adjusted = dist + a.adjustment + b.adjustment;
    if adjusted > 0.0 { adjusted } else { dist }
}

/// The unit vector from `b` to `a` and the distance between them; a random direction when
/// they coincide (Serf's `unitVectorAt`).
fn unit_vector_at(a: &[f64], b: &[f64]) -> (Vec<f64>, f64) {
    let diff: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let mag = magnitude(&diff);
    if mag > ZERO {
        return (diff.iter().map(|x| x / mag).collect(), mag);
    }
    let random: Vec<f64> = (0..a.len()).map(|_| rand::random::<f64>() - 0.5).collect();
    let mag = magnitude(&random);
    if mag > ZERO {
        return (random.iter().map(|x| x / mag).collect(), 0.0);
    }
    (vec![0.0; a.len()], 0.0)
}

/// Serf's `ApplyForce`: moves `c` by `force` seconds away from `other` (toward it when
/// negative) and adjusts its height.
fn apply_force(c: &Coordinate, force: f64, other: &Coordinate) -> Coordinate {
    let (unit, mag) = unit_vector_at(&c.vec, &other.vec);
    let vec = c.vec.iter().zip(&unit).map(|(x, u)| x + u * force).collect();
    let mut height = c.height;
    if mag > ZERO {
        height = ((c.height + other.height) * force / mag + c.height).max(HEIGHT_MIN);
    }
    Coordinate { vec, error: c.error, adjustment: c.adjustment, height }
}

/// This agent's Vivaldi client.
#[derive(Debug)]
pub(crate) struct Vivaldi {
    coord: Coordinate,
    adjustment_samples: [f64; ADJUSTMENT_WINDOW],
    adjustment_index: usize,
    /// Last RTTs (seconds) per peer, for the median filter.
    latency: BTreeMap<String, Vec<f64>>,
}

impl Default for Vivaldi {
    fn default() -> Self {
        Self {
            coord: origin(),
            adjustment_samples: [0.0; ADJUSTMENT_WINDOW],
            adjustment_index: 0,
            latency: BTreeMap::new(),
        }
    }
}

impl Vivaldi {
    /// The current estimate.
    pub(crate) fn coordinate(&self) -> Coordinate {
        self.coord.clone()
    }

    /// Serf's `Update`: folds one RTT to `peer` (at `other`) into the estimate. Returns
    /// whether it was used (an RTT out of range or an invalid peer coordinate is not).
    pub(crate) fn observe(&mut self, peer: &str, other: &Coordinate, rtt: Duration) -> bool {
        if rtt.is_zero() || rtt > MAX_RTT || !other.is_valid() {
            return false;
        }
        let rtt = self.filtered(peer, rtt.as_secs_f64());
        self.update_vivaldi(other, rtt);
        self.update_adjustment(other, rtt);
        self.update_gravity();
        if !self.coord.is_valid() {
            tracing::warn!("vivaldi coordinate turned invalid; resetting it");
            *self = Self { latency: std::mem::take(&mut self.latency), ..Self::default() };
        }
        true
    }

    /// The median of the last `LATENCY_FILTER` RTTs to `peer`, `rtt` included.
    fn filtered(&mut self, peer: &str, rtt: f64) -> f64 {
        let samples = self.latency.entry(peer.to_owned()).or_default();
        samples.push(rtt);
        if samples.len() > LATENCY_FILTER {
            samples.remove(0);
        }
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        sorted.get(sorted.len() / 2).copied().unwrap_or(rtt)
    }

    fn update_vivaldi(&mut self, other: &Coordinate, rtt: f64) {
        let rtt = rtt.max(ZERO);
        let dist = distance(&self.coord, other);
        let wrongness = (dist - rtt).abs() / rtt;
        let total_error = (self.coord.error + other.error).max(ZERO);
        let weight = self.coord.error / total_error;
        self.coord.error = (CE * weight * wrongness + self.coord.error * (1.0 - CE * weight)).min(ERROR_MAX);
        let force = CC * weight * (rtt - dist);
        self.coord = apply_force(&self.coord, force, other);
    }

    fn update_adjustment(&mut self, other: &Coordinate, rtt: f64) {
        let dist = raw_distance(&self.coord, other);
        self.adjustment_samples[self.adjustment_index] = rtt - dist;
        self.adjustment_index = (self.adjustment_index + 1) % ADJUSTMENT_WINDOW;
        let sum: f64 = self.adjustment_samples.iter().sum();
        self.coord.adjustment = sum / (2.0 * ADJUSTMENT_WINDOW as f64);
    }

    fn update_gravity(&mut self) {
        let o = origin();
        let dist = distance(&self.coord, &o);
        let force = -(dist / GRAVITY_RHO).powi(2);
        self.coord = apply_force(&self.coord, force, &o);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_client_sits_at_the_origin_with_serfs_defaults() {
        let c = Vivaldi::default().coordinate();
        assert_eq!(c.vec, vec![0.0; 8]);
        assert_eq!((c.error, c.adjustment, c.height), (1.5, 0.0, 10.0e-6));
    }

    #[test]
    fn out_of_range_rtts_are_ignored() {
        let mut v = Vivaldi::default();
        assert!(!v.observe("b", &origin(), Duration::ZERO));
        assert!(!v.observe("b", &origin(), Duration::from_secs(11)));
        assert_eq!(v.coordinate(), origin());
    }

    /// Three nodes on a line with known RTTs: after enough rounds each estimate is close to
    /// the true distances (Serf's own test uses the same idea).
    #[test]
    fn estimates_converge_to_the_measured_rtts() {
        let rtt = |a: usize, b: usize| Duration::from_millis(10 * (a.abs_diff(b) as u64) + 1);
        let mut nodes: Vec<Vivaldi> = (0..3).map(|_| Vivaldi::default()).collect();
        for _ in 0..500 {
            for i in 0..3 {
                for j in 0..3 {
                    if i != j {
                        let other = nodes[j].coordinate();
                        assert!(nodes[i].observe(&j.to_string(), &other, rtt(i, j)));
                    }
                }
            }
        }
        for (i, j) in [(0, 1), (1, 2), (0, 2)] {
            let est = distance(&nodes[i].coordinate(), &nodes[j].coordinate());
            let want = rtt(i, j).as_secs_f64();
            assert!((est - want).abs() < want * 0.25, "{i}-{j}: estimated {est}, measured {want}");
            assert!(nodes[i].coordinate().error < 1.5);
        }
    }

    #[test]
    fn the_median_filter_drops_an_outlier() {
        let mut v = Vivaldi::default();
        assert_eq!(v.filtered("p", 0.010), 0.010);
        assert_eq!(v.filtered("p", 0.500), 0.500);
        assert_eq!(v.filtered("p", 0.011), 0.011);
        assert_eq!(v.filtered("p", 0.012), 0.012);
        assert_eq!(v.filtered("q", 0.3), 0.3, "per peer");
    }
}
