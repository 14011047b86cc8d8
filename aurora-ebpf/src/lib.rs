//! Host-side placeholder: the kernel programs live in `main.rs` and only build for the BPF
//! target. This lib lets `aurora-agent` name the crate as a build dependency so cargo rebuilds
//! the agent when the programs change.
#![no_std]
