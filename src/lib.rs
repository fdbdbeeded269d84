//! Switchyard
