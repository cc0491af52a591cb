//! Measurements behind `make bench` (driven by `infra/bench/run.py`, which prints the table):
//! what each command measures is said in its module. Figures are medians over repeated runs
//! with their min and max; a ratio is taken between two figures of the same run.
//!
//! A measuring tool, not part of the product: it may depend on every other package, nothing
//! depends on it.

pub mod coldstart;
pub mod cpu;
pub mod critical;
pub mod matching;
pub mod pipeline;
pub mod receiver;
pub mod stack;
pub mod stats;
pub mod throughput;
