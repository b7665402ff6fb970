//! Integration tests against real servers on loopback: the Temporal dev server, moto's S3
//! server, the provider simulator and the worker binary. One binary, one module per suite.

mod archive;
mod chaos;
mod copy;
mod durable;
mod generate;
mod provider;
mod python;
mod ratecap;
mod replay;
mod scale;
mod stack;
mod workflow;
