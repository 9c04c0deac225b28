//! Tern load generators and benchmarks.
