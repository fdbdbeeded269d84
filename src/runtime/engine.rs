//! The engine and its linkers, configured once from `[runtime]`.
//!
//! Owns the wasmtime `Config`s (epoch interruption, fuel, the pooling allocator and its sizes,
//! the compiled-module cache), the engines (one for core modules, one for components, each with
//! its own pool so neither can take the other's slots) and the linkers (host functions; host
//! functions plus WASI preview 1; for components, the host interfaces plus WASI preview 2). It
//! must never load a module or start a thread.

use wasmtime::{Engine, InstanceAllocationStrategy, Linker, PoolingAllocationConfig};

use super::state::{CORE_INSTANCES_PER_COMPONENT, HostState, MEMORIES_PER_COMPONENT, TABLES_PER_COMPONENT};
use super::{component, host};
use crate::config::RuntimeConfig;

/// The engines and the linkers every module version is linked with.
pub struct Engines {
    /// Core modules' engine: its pool holds `runtime.max_instances` instances.
    pub engine: Engine,
    /// Components' engine: its pool holds `runtime.max_component_instances` component
    /// instances, each with its budget of core instances, memories and tables.
    pub component_engine: Engine,
    pub linker: Linker<HostState>,
    /// `linker` plus WASI preview 1, for modules granted `wasi`.
    pub wasi_linker: Linker<HostState>,
    /// For components: the host interfaces and WASI preview 2 ([`component::linker`]).
    pub component_linker: wasmtime::component::Linker<HostState>,
}

pub fn build(cfg: &RuntimeConfig) -> anyhow::Result<Engines> {
    let engine = new_engine(cfg, |pool| {
        pool.total_core_instances(cfg.max_instances)
            .total_memories(cfg.max_instances)
            .total_tables(cfg.max_instances)
            .total_stacks(cfg.max_instances);
    })?;
    // A component links several core instances (a Python one 16): each of the
    // `max_component_instances` gets the per-component budget, in a pool of its own.
    let comps = cfg.max_component_instances.max(1);
    let component_engine = new_engine(cfg, |pool| {
        pool.total_component_instances(comps)
            .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
            .max_memories_per_component(MEMORIES_PER_COMPONENT)
            .max_tables_per_component(TABLES_PER_COMPONENT)
            .total_core_instances(comps * CORE_INSTANCES_PER_COMPONENT)
            .total_memories(comps * MEMORIES_PER_COMPONENT)
            .total_tables(comps * TABLES_PER_COMPONENT)
            .total_stacks(comps);
    })?;
    let mut linker = Linker::new(&engine);
    host::add_to_linker(&mut linker)?;
    let mut wasi_linker = linker.clone();
    wasmtime_wasi::p1::add_to_linker_async(&mut wasi_linker, |s: &mut HostState| {
        s.wasi.as_mut().expect("WASI context exists for every module linked with WASI")
    })?;
    let component_linker = component::linker(&component_engine)?;
    Ok(Engines { engine, component_engine, linker, wasi_linker, component_linker })
}

impl Engines {
    /// Both engines, for the epoch ticker.
    pub fn all(&self) -> Vec<Engine> {
        vec![self.engine.clone(), self.component_engine.clone()]
    }
}

/// An engine whose pool `size` sizes (counts of instances, memories, tables, stacks).
fn new_engine(cfg: &RuntimeConfig, size: impl FnOnce(&mut PoolingAllocationConfig)) -> anyhow::Result<Engine> {
    let mut wcfg = wasmtime::Config::new();
    wcfg.epoch_interruption(true);
    wcfg.consume_fuel(cfg.fuel);
    let mut pool = PoolingAllocationConfig::default();
    size(&mut pool);
    pool.max_memory_size((cfg.max_memory_mib as usize) * 1024 * 1024)
        // Reset the start of memory (data, small stacks, the first allocations) with
        // memset and keep it resident, instead of madvise + page faults on every event.
        .pagemap_scan(if cfg.pagemap_scan { wasmtime::Enabled::Auto } else { wasmtime::Enabled::No })
        .linear_memory_keep_resident(cfg.keep_resident_kib * 1024)
        .table_keep_resident(64 * 1024)
        .async_stack_keep_resident(64 * 1024)
        .decommit_batch_size(32);
    wcfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    if let Some(dir) = &cfg.cache_dir {
        let dir = std::path::absolute(dir)?;
        let mut cc = wasmtime::CacheConfig::new();
        cc.with_directory(&dir);
        match wasmtime::Cache::new(cc) {
            Ok(cache) => {
                wcfg.cache(Some(cache));
            }
            Err(e) => tracing::warn!(dir = %dir.display(), "compiled-module cache disabled: {e:#}"),
        }
    }
    Ok(Engine::new(&wcfg)?)
}
