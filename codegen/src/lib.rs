//! Cranelift code generation: kernels specialised to a network's exact
//! shapes, compiled once when a model is built.
//!
//! One module per kernel family ([`conv`]: direct convolution, which also
//! serves 1x1 convolutions and dense layers as a packed GEMM; [`winograd`]:
//! Winograd F(2x2) and F(4x4) 3x3 convolutions, picked per layer by
//! [`choice`]; [`separable`]: two convolutions fused into one pass;
//! [`depthwise`], [`pool`], [`elementwise`]: an unfused add or a scale;
//! [`softmax`], in place; [`mod@concat`], a branch into its channel slice;
//! [`lrn`], local response normalisation), and [`native`], the precompiled AVX2 and AVX-512 GEMM tiles
//! that convolution kernels call for their innermost tile where the host has
//! them, with [`native_epilogue`], their fused epilogue at the same width,
//! and [`native_winograd`], Winograd's transforms at that width. [`lower`] decides, once, what each step of a plan runs
//! (a kernel spec with its named operands, or the reference kernels and
//! why). Each family
//! has a `Spec` (every shape and hyper-parameter, baked into the code as
//! constants), a packing function that lays weights out as its code reads
//! them, and an `emit` function. [`Jit`] compiles specs into a [`Program`],
//! compiling each distinct spec once.
//!
//! A conv, depthwise, Winograd or pool kernel can write its output into a
//! channel slice of a wider tensor ([`Kernel::sliced`], [`ChannelSlice`]):
//! a concat's branch writes its channels of the concat's output in place.
//! Its output addresses then go through one `OutputLayout` (pixel stride,
//! first channel), and `Lengths::output` is the wider tensor's length.
//!
//! Every kernel has one signature, [`KernelFn`]:
//! `(input, weights, params, extra, output, scratch, begin, end)`, where
//! `params` holds per-channel vectors (bias, bn scale and shift), `extra` a
//! residual's shortcut, `scratch` working memory private to this call (a
//! kernel that keeps an intermediate in cache, e.g. a fused pair of layers or
//! a transformed tile), and `[begin, end)` the output rows to compute, so that
//! threads split rows and never a reduction. Each thread's call gets its own
//! `scratch`, so no two calls ever write the same scratch.
//!
//! Invariant (the safety contract of every kernel): given buffers of at least
//! the lengths in [`Lengths`], the code reads only `input`, `weights`,
//! `params` and `extra` within those lengths and writes only `output` and
//! `scratch` within theirs (an in-place kernel, [`softmax`], reads `output`
//! too), for any `0 <= begin <= end <= rows`. Every bound
//! is a constant derived from the spec; there is no data-dependent address.
//!
//! A second promise, which lets a step write its output over the shortcut it
//! adds (`plan::Step::over`): `extra` may be `output` itself. Every kernel
//! reads `extra` only in its epilogue's add, at the element of the output it
//! then stores (`apply_epilogue`, `native_epilogue`'s `finish`, each once per
//! output element), so each shortcut element is read just before the output
//! element in its place is written, and never after. The guard-page test
//! runs every family with an add both ways.
//!
//! Every kernel's machine code is logged (the `log` crate) at debug level
//! with target [`DISASM_TARGET`], and only formatted when a logger takes it;
//! the `cnnjit` CLI prints it to stderr when `CNNJIT_DISASM` is set.
//!
//! What was measured on this CPU shapes the code (ARCHITECTURE.md):
//! `opt_level = none`, a fresh load and splat per use (a read-only load folds
//! into one `vbroadcastss` from memory), one short loop per kernel tap,
//! top-tested loops. Unlike the design notes' prototype, `fma` beat `fmul` +
//! `fadd` here (see `vector::mul_add`).

#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod algorithm;
pub mod batch;
pub mod choice;
pub mod concat;
pub mod conv;
pub mod depthwise;
pub mod elementwise;
pub mod host;
pub mod lower;
pub mod lrn;
pub mod native;
pub mod native_dense_batch;
pub mod native_depthwise;
pub mod native_epilogue;
pub mod native_gemv;
pub mod native_winograd;
pub mod pool;
pub mod separable;
pub mod softmax;
pub mod vector;
pub mod winograd;

pub use algorithm::{Algorithm, Tile};
use cnnjit_ir::Activation;

use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{
    types, AbiParam, BlockArg, Function, InstBuilder, Signature, StackSlot, UserFuncName, Value,
};
use cranelift_codegen::isa::{OwnedTargetIsa, TargetIsa};
use cranelift_codegen::{settings, settings::Configurable, Context};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module, ModuleError, ModuleReloc};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// The `log` target of the kernels' machine code (debug level).
pub const DISASM_TARGET: &str = "cnnjit::disasm";

/// Why code could not be generated, with Cranelift's own error as the source.
#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    /// Cranelift has no back end for this host's architecture.
    #[error("Cranelift cannot generate code for this host: {0}")]
    UnsupportedHost(&'static str),
    /// Cranelift refused one of the settings the kernels are compiled with.
    #[error("Cranelift cannot generate code for this host: setting `{setting}`: {source}")]
    Setting {
        /// The setting's name.
        setting: &'static str,
        /// Cranelift's error.
        #[source]
        source: settings::SetError,
    },
    /// Cranelift cannot build an instruction set for this host.
    #[error("Cranelift cannot generate code for this host: {0}")]
    Isa(#[source] cranelift_codegen::CodegenError),
    /// Cranelift rejected a kernel, or could not link the program (a bug in
    /// cnnjit, or memory the system refused).
    #[error("code generation failed for {kernel}: {source}")]
    Failed {
        /// The kernel's spec, or `the program`.
        kernel: String,
        /// Cranelift's error.
        #[source]
        source: Box<ModuleError>,
    },
}

/// The signature of every kernel:
/// `(input, weights, params, extra, output, scratch, begin, end)`.
pub type KernelFn = unsafe extern "C" fn(
    *const f32,
    *const f32,
    *const f32,
    *const f32,
    *mut f32,
    *mut f32,
    i64,
    i64,
);

/// The lengths, in `f32`s, that a kernel's buffers must have at least: the
/// kernel's half of the safety contract (module doc) is that it touches no
/// element past them, so a caller that checks these lengths may call it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lengths {
    /// `input`: the elements the kernel may read from it.
    pub input: usize,
    /// `weights`, as the family's packing function lays them out.
    pub weights: usize,
    /// `params` (packed per-channel vectors).
    pub params: usize,
    /// `extra` (a residual's shortcut), 0 if unused.
    pub extra: usize,
    /// `output`: the elements the kernel may write (for a kernel writing a
    /// channel slice, the whole wider tensor, see [`Kernel::sliced`]).
    pub output: usize,
    /// `scratch`, per call: each thread's call gets this many of its own; 0 if unused.
    pub scratch: usize,
    /// The rows `[begin, end)` ranges over: any `0 <= begin <= end <= rows`
    /// is a valid call, and calls on disjoint ranges write disjoint output.
    pub rows: usize,
}

/// Any kernel the JIT can compile.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Direct convolution, 1x1 convolution, dense.
    Conv(conv::ConvSpec),
    /// Depthwise convolution.
    Depthwise(depthwise::DepthwiseSpec),
    /// Max and average pooling, windowed and global.
    Pool(pool::PoolSpec),
    /// Winograd F(m x m, 3 x 3) convolution; its rows are tile rows.
    Winograd(winograd::WinogradSpec),
    /// A separable pair (depthwise + pointwise, `1xk` + `kx1`) in one pass.
    Separable(separable::SeparableSpec),
    /// An unfused add or a scale, the second operand in `extra`.
    Elementwise(elementwise::ElementwiseSpec),
    /// Softmax over channels, in place on `output`.
    Softmax(softmax::SoftmaxSpec),
    /// One concat branch copied into its channel slice of `output`.
    Concat(concat::ConcatSpec),
    /// Local response normalisation across channels; its rows are pixels.
    Lrn(lrn::LrnSpec),
}

impl Kernel {
    /// The buffer lengths of its safety contract.
    pub fn lengths(&self) -> Lengths {
        match self {
            Kernel::Conv(spec) => spec.lengths(),
            Kernel::Depthwise(spec) => spec.lengths(),
            Kernel::Pool(spec) => spec.lengths(),
            Kernel::Winograd(spec) => spec.lengths(),
            Kernel::Separable(spec) => spec.lengths(),
            Kernel::Elementwise(spec) => spec.lengths(),
            Kernel::Softmax(spec) => spec.lengths(),
            Kernel::Concat(spec) => spec.lengths(),
            Kernel::Lrn(spec) => spec.lengths(),
        }
    }

    /// PyTorch-layout weights packed as the kernel reads them, each output
    /// channel's times its `scale` if given (a bn folded in as they are packed;
    /// see [`fold`]). A separable pair has two layers' weights: each half
    /// packs its own, first then second.
    pub fn pack_weights(&self, weight: &[f32], scale: Option<&[f64]>) -> Vec<f32> {
        match self {
            Kernel::Conv(spec) => spec.pack_weights(weight, scale),
            Kernel::Depthwise(spec) => spec.pack_weights(weight, scale),
            Kernel::Pool(_)
            | Kernel::Separable(_)
            | Kernel::Elementwise(_)
            | Kernel::Softmax(_)
            | Kernel::Concat(_)
            | Kernel::Lrn(_) => Vec::new(),
            Kernel::Winograd(spec) => spec.pack_weights(weight, scale),
        }
    }

    /// A per-channel vector (bias, bn scale or shift) packed as the kernel
    /// reads it; a separable pair's halves pack their own, as for weights.
    pub fn pack_vector(&self, v: &[f32]) -> Vec<f32> {
        match self {
            Kernel::Conv(spec) => spec.pack_vector(v),
            Kernel::Depthwise(spec) => spec.pack_vector(v),
            Kernel::Pool(spec) => spec.pack_vector(v),
            Kernel::Winograd(spec) => spec.pack_vector(v),
            Kernel::Elementwise(spec) => spec.pack_vector(v),
            Kernel::Lrn(spec) => spec.pack_vector(v),
            Kernel::Separable(_) | Kernel::Softmax(_) | Kernel::Concat(_) => Vec::new(),
        }
    }

    fn emit(&self, b: &mut FunctionBuilder, args: &Args) {
        match self {
            Kernel::Conv(spec) => conv::emit(spec, b, args),
            Kernel::Depthwise(spec) => depthwise::emit(spec, b, args),
            Kernel::Pool(spec) => pool::emit(spec, b, args),
            Kernel::Winograd(spec) => winograd::emit(spec, b, args),
            Kernel::Separable(spec) => separable::emit(spec, b, args),
            Kernel::Elementwise(spec) => elementwise::emit(spec, b, args),
            Kernel::Softmax(spec) => softmax::emit(spec, b, args),
            Kernel::Concat(spec) => concat::emit(spec, b, args),
            Kernel::Lrn(spec) => lrn::emit(spec, b, args),
        }
    }
}

impl Kernel {
    /// The kernel writing its output into channel slice `slice` of a wider
    /// tensor (a concat's output, in place) rather than into a tensor of its
    /// own, or `None` where it cannot: a family without a strided output
    /// (only conv, depthwise, Winograd and pool kernels have one), a slice
    /// that does not fit in `slice.total` channels, or an epilogue that adds
    /// a shortcut (the shortcut is contiguous, and the shared epilogue reads
    /// it at the output's offsets).
    pub fn sliced(self, slice: ChannelSlice) -> Option<Kernel> {
        let fits = |epilogue: &[Epilogue], channels: usize| {
            !epilogue.contains(&Epilogue::Add) && slice.first + channels <= slice.total
        };
        match self {
            Kernel::Conv(mut spec) if fits(&spec.epilogue, spec.output[2]) => {
                spec.slice = Some(slice);
                Some(Kernel::Conv(spec))
            }
            Kernel::Depthwise(mut spec) if fits(&spec.epilogue, spec.channels) => {
                spec.slice = Some(slice);
                Some(Kernel::Depthwise(spec))
            }
            Kernel::Pool(mut spec) if fits(&spec.epilogue, spec.channels) => {
                spec.slice = Some(slice);
                Some(Kernel::Pool(spec))
            }
            Kernel::Winograd(mut spec) if fits(&spec.epilogue, spec.output[2]) => {
                spec.slice = Some(slice);
                Some(Kernel::Winograd(spec))
            }
            _ => None,
        }
    }
}

/// A channel slice of a wider HWC tensor that a kernel writes its output
/// into: channel `c` of pixel `p` at element `p * total + first + c`. A
/// concat's branch writes its slice of the concat's output this way, in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChannelSlice {
    /// The slice's first channel in the wider tensor.
    pub first: usize,
    /// The wider tensor's channels: the slice's pixel stride.
    pub total: usize,
}

/// Where a kernel's output pixels lie in `output`: `stride` elements apart,
/// from element `first`. Every family that can write a [`ChannelSlice`]
/// computes its output addresses through this, contiguous or not.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OutputLayout {
    /// Elements from one pixel to the next.
    pub stride: usize,
    /// The element of pixel 0's channel 0.
    pub first: usize,
}

impl OutputLayout {
    /// The layout of an output of `channels` channels per pixel, written
    /// into `slice` if any, else contiguous.
    pub(crate) fn new(slice: Option<ChannelSlice>, channels: usize) -> OutputLayout {
        match slice {
            Some(ChannelSlice { first, total }) => OutputLayout {
                stride: total,
                first,
            },
            None => OutputLayout {
                stride: channels,
                first: 0,
            },
        }
    }

    /// The `output` length of `pixels` pixels ([`Lengths::output`]).
    pub(crate) fn len(self, pixels: usize) -> usize {
        pixels * self.stride
    }

    /// Bytes from one pixel to the next.
    pub(crate) fn pixel_bytes(self) -> i64 {
        (self.stride * 4) as i64
    }

    /// `output` moved to pixel 0's channel 0.
    pub(crate) fn start(self, b: &mut FunctionBuilder, output: Value) -> Value {
        b.ins().iadd_imm_s(output, (self.first * 4) as i64)
    }
}

/// The kernel's parameters, as SSA values in the entry block.
#[derive(Clone, Copy)]
pub(crate) struct Args {
    pub input: Value,
    pub weights: Value,
    pub params: Value,
    pub extra: Value,
    pub output: Value,
    pub scratch: Value,
    pub begin: Value,
    pub end: Value,
    /// Where a native tile's epilogue runs [`native_epilogue`]'s code
    /// ([`Jit::with_native_epilogue`]): a choice of code, not of results.
    pub native_epilogue: native_epilogue::Use,
}

/// The index of a compiled kernel in its [`Program`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KernelId(usize);

/// Compiles kernels, each distinct spec once: [`Jit::compile`] gives a
/// kernel its id (the next one, in the order of the calls), and
/// [`Jit::finish_on`] generates every kernel's machine code, on several
/// threads, and links it into one [`Program`].
///
/// Invariant: a kernel's machine code depends on its spec and this JIT's
/// settings alone, never on the thread that generates it or on the thread
/// count, and its id on the order of the `compile` calls alone: any thread
/// count gives the same program.
pub struct Jit {
    module: JITModule,
    /// The module's instruction set, shared with the threads that generate code.
    isa: OwnedTargetIsa,
    /// [`KernelFn`]'s signature.
    signature: Signature,
    ids: HashMap<Kernel, KernelId>,
    /// Each kernel and its function in `module`, in id order.
    kernels: Vec<(Kernel, FuncId)>,
    native_epilogue: native_epilogue::Use,
}

impl Jit {
    /// A JIT for this host.
    pub fn new() -> Result<Jit, CodegenError> {
        Jit::with_native_epilogue(native_epilogue::Use::default())
    }

    /// A JIT for this host whose kernels apply the epilogue of a native
    /// tile with [`native_epilogue`]'s code where `code` says (and the host
    /// has it), else with Cranelift's `f32x4` code, as every other tile. The
    /// two give bitwise the same outputs; [`Jit::new`] takes the faster.
    pub fn with_native_epilogue(code: native_epilogue::Use) -> Result<Jit, CodegenError> {
        let mut flags = settings::builder();
        let verifier = if cfg!(debug_assertions) {
            "true"
        } else {
            "false"
        };
        for (setting, value) in [
            ("opt_level", "none"),
            ("is_pic", "false"),
            ("enable_verifier", verifier),
        ] {
            flags
                .set(setting, value)
                .map_err(|source| CodegenError::Setting { setting, source })?;
        }
        let isa = cranelift_native::builder()
            .map_err(CodegenError::UnsupportedHost)?
            .finish(settings::Flags::new(flags))
            .map_err(CodegenError::Isa)?;
        let module = JITModule::new(JITBuilder::with_isa(isa.clone(), default_libcall_names()));
        let mut signature = module.make_signature();
        let ptr = module.target_config().pointer_type();
        signature.params.extend([AbiParam::new(ptr); 6]);
        signature.params.extend([AbiParam::new(types::I64); 2]);
        Ok(Jit {
            module,
            isa,
            signature,
            ids: HashMap::new(),
            kernels: Vec::new(),
            native_epilogue: code,
        })
    }

    /// How many distinct kernels were compiled.
    pub fn compiled(&self) -> usize {
        self.kernels.len()
    }

    /// Compiles `kernel`, or returns the id of the identical one compiled
    /// before. Its code is generated by [`Jit::finish_on`], with every other
    /// kernel's, and its errors reported there.
    pub fn compile(&mut self, kernel: &Kernel) -> Result<KernelId, CodegenError> {
        if let Some(id) = self.ids.get(kernel) {
            return Ok(*id);
        }
        let index = self.kernels.len();
        let func = self
            .module
            .declare_function(&format!("kernel{index}"), Linkage::Local, &self.signature)
            .map_err(|e| failed(kernel, e))?;
        let id = KernelId(index);
        self.kernels.push((kernel.clone(), func));
        self.ids.insert(kernel.clone(), id);
        Ok(id)
    }

    /// Links every compiled kernel into an executable [`Program`], its code
    /// generated on the calling thread: [`Jit::finish_on`] one thread.
    pub fn finish(self) -> Result<Program, CodegenError> {
        self.finish_on(1)
    }

    /// Generates every compiled kernel's machine code on `threads` threads
    /// (the calling thread one of them; 0 counts as 1) and links it into an
    /// executable [`Program`]. Each kernel's Cranelift IR is built, then
    /// compiled, the largest function first so that the longest compilation
    /// does not start last; the code is then placed in the one module in id
    /// order. A kernel Cranelift rejects fails the whole program, the first
    /// such kernel in id order named in the error.
    pub fn finish_on(mut self, threads: usize) -> Result<Program, CodegenError> {
        let generator = Generator {
            isa: &*self.isa,
            signature: &self.signature,
            native_epilogue: self.native_epilogue,
            disasm: log::log_enabled!(target: DISASM_TARGET, log::Level::Debug),
        };
        let kernels = &self.kernels;
        let functions = on_threads(threads, (0..kernels.len()).collect(), |i| {
            generator.function(&kernels[i].0, kernels[i].1)
        });
        let mut jobs: Vec<(usize, Function)> = functions.into_iter().enumerate().collect();
        jobs.sort_by_key(|(i, f)| (std::cmp::Reverse(f.dfg.num_insts()), *i));
        let mut code = on_threads(threads, jobs, |(i, function)| {
            (i, generator.code(&kernels[i].0, kernels[i].1, function))
        });
        code.sort_by_key(|(i, _)| *i);
        let mut sizes = Vec::with_capacity(code.len());
        for ((kernel, func), (i, code)) in self.kernels.iter().zip(code) {
            let code = code?;
            if let Some(disasm) = &code.disasm {
                log::debug!(target: DISASM_TARGET, "kernel{i}: {kernel:?}\n{disasm}");
            }
            self.module
                .define_function_bytes(*func, code.alignment, &code.bytes, &code.relocs)
                .map_err(|e| failed(kernel, e))?;
            sizes.push(code.bytes.len());
        }
        self.module
            .finalize_definitions()
            .map_err(|e| CodegenError::Failed {
                kernel: "the program".into(),
                source: Box::new(e),
            })?;
        let functions = (self.kernels.iter())
            .map(|(_, func)| {
                let code = self.module.get_finalized_function(*func);
                // SAFETY: `code` is the finalized entry of a function declared with the
                // signature of `KernelFn` (six pointers and two i64s, the host's C calling
                // convention, no return value); it stays valid while `module` lives, and
                // `Program` owns `module` for as long as it hands out these pointers.
                unsafe { std::mem::transmute::<*const u8, KernelFn>(code) }
            })
            .collect();
        Ok(Program {
            module: Some(self.module),
            functions,
            sizes,
        })
    }
}

/// `kernel`'s code could not be generated or linked.
fn failed(kernel: &Kernel, e: ModuleError) -> CodegenError {
    CodegenError::Failed {
        kernel: format!("{kernel:?}"),
        source: Box::new(e),
    }
}

/// What generating one kernel's code needs, shared by the threads of [`Jit::finish_on`].
struct Generator<'j> {
    isa: &'j dyn TargetIsa,
    signature: &'j Signature,
    native_epilogue: native_epilogue::Use,
    /// Whether to keep the machine code's text for the [`DISASM_TARGET`] log.
    disasm: bool,
}

/// One kernel's machine code, ready to be placed in the module.
struct Code {
    bytes: Vec<u8>,
    alignment: u64,
    relocs: Vec<ModuleReloc>,
    disasm: Option<String>,
}

impl Generator<'_> {
    /// `kernel`'s Cranelift IR, as function `func` of the module.
    fn function(&self, kernel: &Kernel, func: FuncId) -> Function {
        let name = UserFuncName::user(0, func.as_u32());
        let mut function = Function::with_name_signature(name, self.signature.clone());
        let mut fctx = FunctionBuilderContext::new();
        let mut b = FunctionBuilder::new(&mut function, &mut fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let p = b.block_params(entry).to_vec();
        let args = Args {
            input: p[0],
            weights: p[1],
            params: p[2],
            extra: p[3],
            output: p[4],
            scratch: p[5],
            begin: p[6],
            end: p[7],
            native_epilogue: self.native_epilogue,
        };
        kernel.emit(&mut b, &args);
        b.ins().return_(&[]);
        b.seal_all_blocks();
        b.finalize(self.isa.frontend_config());
        function
    }

    /// `function`, `kernel`'s IR as function `func`, compiled to machine code.
    fn code(
        &self,
        kernel: &Kernel,
        func: FuncId,
        function: Function,
    ) -> Result<Code, CodegenError> {
        let mut ctx = Context::for_function(function);
        ctx.set_disasm(self.disasm);
        let compiled = ctx
            .compile(self.isa, &mut ControlPlane::default())
            .map_err(|e| failed(kernel, ModuleError::Compilation(e.inner)))?;
        let bytes = compiled.code_buffer().to_vec();
        let alignment = u64::from(compiled.buffer.alignment);
        let relocs = compiled.buffer.relocs().to_vec();
        let disasm = compiled.vcode.clone().filter(|_| self.disasm);
        Ok(Code {
            bytes,
            alignment,
            relocs: (relocs.iter())
                .map(|reloc| ModuleReloc::from_mach_reloc(reloc, &ctx.func, func))
                .collect(),
            disasm,
        })
    }
}

/// `f` of every item on `threads` threads, the calling thread one of them
/// (0 counts as 1; fewer where the system refuses a thread), each taking
/// the next item left in order; the results in the items' order. A panic
/// in `f` is resumed on the calling thread.
fn on_threads<T: Send, R: Send>(
    threads: usize,
    items: Vec<T>,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let helpers = threads.min(items.len()).saturating_sub(1);
    let queue = Mutex::new(items.into_iter().enumerate());
    let work = || {
        let mut done = Vec::new();
        loop {
            // The lock is held only to take the next item; a panic while
            // holding it cannot leave the iterator half-advanced.
            let next = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
            let Some((i, item)) = next else {
                return done;
            };
            done.push((i, f(item)));
        }
    };
    let mut done = std::thread::scope(|scope| {
        let spawned: Vec<_> = (0..helpers)
            .filter_map(|_| std::thread::Builder::new().spawn_scoped(scope, work).ok())
            .collect();
        let mut done = work();
        for handle in spawned {
            match handle.join() {
                Ok(more) => done.extend(more),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        done
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// Compiled kernels, executable. Dropping it frees their code.
pub struct Program {
    module: Option<JITModule>,
    functions: Vec<KernelFn>,
    /// Each kernel's code, in bytes.
    sizes: Vec<usize>,
}

// SAFETY: after `finalize_definitions` the code is immutable and mapped read +
// execute; the kernels keep no state, so they may be called from any thread at
// once. The module is touched again only in `drop`, which needs `&mut self`.
unsafe impl Send for Program {}
// SAFETY: as for `Send`: shared references only read the function pointers.
unsafe impl Sync for Program {}

impl Program {
    /// The compiled code of `id`. Calling it is `unsafe`: the caller must
    /// honour the kernel's [`Lengths`].
    pub fn function(&self, id: KernelId) -> KernelFn {
        self.functions[id.0]
    }

    /// The machine code of `id`, as linked in this program.
    pub fn code(&self, id: KernelId) -> &[u8] {
        let start = self.functions[id.0] as *const u8;
        // SAFETY: the module placed the `sizes[id]` bytes of this kernel's code from
        // `start` and finalized them (mapped readable and executable, never written
        // again); they stay mapped until `drop`, which cannot run while `self` is borrowed.
        unsafe { std::slice::from_raw_parts(start, self.sizes[id.0]) }
    }

    /// How many kernels it holds.
    pub fn len(&self) -> usize {
        self.functions.len()
    }

    /// Whether it holds no kernel.
    pub fn is_empty(&self) -> bool {
        self.functions.is_empty()
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        if let Some(module) = self.module.take() {
            // SAFETY: the function pointers into this memory live in `self.functions`,
            // which is being dropped with it; `Program` hands out copies only through
            // `function`, whose callers (the runtime's executor) hold the `Program`
            // (behind an `Arc`) for as long as they call them.
            unsafe { module.free_memory() };
        }
    }
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Program({} kernels)", self.functions.len())
    }
}

/// One step of a fused epilogue, applied to the accumulators in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Epilogue {
    /// `x * scale + shift`, per channel: the next two vectors in `params`.
    Affine,
    /// `max(x, 0) + slope min(x, 0)`, a slope per channel: the next vector
    /// in `params` (a prelu).
    PRelu,
    /// An activation.
    Act(Activation),
    /// `x + extra` (a residual's shortcut, same layout as the output).
    Add,
}

/// The `params` and `extra` lengths a fused epilogue needs: a bias vector
/// plus a scale and a shift vector per affine step and a slope vector per
/// prelu step (each `vector` floats), and an output-sized shortcut if it
/// adds one.
pub(crate) fn epilogue_lengths(
    epilogue: &[Epilogue],
    vector: usize,
    output: usize,
) -> (usize, usize) {
    let vectors: usize = epilogue.iter().map(|e| e.vectors()).sum();
    let extra = if epilogue.contains(&Epilogue::Add) {
        output
    } else {
        0
    };
    (vector * (1 + vectors), extra)
}

impl Epilogue {
    /// The per-channel vectors of `params` this step reads.
    pub const fn vectors(&self) -> usize {
        match self {
            Epilogue::Affine => 2,
            Epilogue::PRelu => 1,
            Epilogue::Act(_) | Epilogue::Add => 0,
        }
    }
}

/// `weight` times output channel `k`'s factor in `scale` (none: 1), in `f64`
/// and rounded once: exactly what folding a bn into the weights gives, so
/// packing with a scale equals packing weights folded beforehand.
pub fn fold(weight: f32, k: usize, scale: Option<&[f64]>) -> f32 {
    scale.map_or(weight, |s| (f64::from(weight) * s[k]) as f32)
}

/// Channels rounded up to whole `f32x4` vectors.
pub(crate) fn padded_channels(channels: usize) -> usize {
    channels.div_ceil(4) * 4
}

/// A per-channel vector zero-padded to whole `f32x4` vectors.
pub(crate) fn pack_padded(v: &[f32]) -> Vec<f32> {
    let mut packed = v.to_vec();
    packed.resize(padded_channels(v.len()), 0.0);
    packed
}

/// Where one output vector of a fused epilogue lives.
pub(crate) struct Epilogued {
    /// The bias of this channel block in `params` (the epilogue's vectors follow at multiples of `vector`).
    pub params: Value,
    /// Byte offset of these four channels within the block's vectors.
    pub channel: i64,
    /// Bytes of one packed per-channel vector.
    pub vector: i64,
    /// `extra` at the output's position.
    pub extra: Value,
    /// `output` at the output's position.
    pub output: Value,
    /// Byte offset of these four lanes from `extra` and `output` (one
    /// offset for both: a kernel writing a [`ChannelSlice`] adds no shortcut).
    pub element: i64,
    /// Valid lanes (1 to 4).
    pub lanes: usize,
}

/// Adds the bias to the accumulator `x`, applies `steps` in order, and stores
/// the valid lanes: the epilogue every kernel family shares.
pub(crate) fn apply_epilogue(
    b: &mut FunctionBuilder,
    steps: &[Epilogue],
    x: Value,
    at: &Epilogued,
) {
    let bias = vector::load4(b, at.params, at.channel);
    let mut x = b.ins().fadd(x, bias);
    // The bias is vector 0; each step's own vectors follow in order.
    let mut next = 1;
    for step in steps {
        let offset = at.vector * next + at.channel;
        next += step.vectors() as i64;
        match *step {
            Epilogue::Affine => {
                let scale = vector::load4(b, at.params, offset);
                let shift = vector::load4(b, at.params, offset + at.vector);
                x = vector::mul_add(b, x, scale, shift);
            }
            Epilogue::PRelu => {
                let slope = vector::load4(b, at.params, offset);
                x = vector::leaky(b, x, slope);
            }
            Epilogue::Act(act) => x = vector::activate(b, act, x),
            Epilogue::Add => {
                let s = vector::load_partial(b, at.extra, at.element, at.lanes);
                x = b.ins().fadd(x, s);
            }
        }
    }
    vector::store_partial(b, x, at.output, at.element, at.lanes);
}

/// Runs of consecutive outputs along one axis whose valid kernel taps are the
/// same: `(first output, end output, first tap, end tap)`.
pub(crate) fn tap_classes(
    outputs: usize,
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad: usize,
) -> Vec<(usize, usize, usize, usize)> {
    let mut classes: Vec<(usize, usize, usize, usize)> = Vec::new();
    for o in 0..outputs {
        let valid = |t: usize| {
            let i = (o * stride + t * dilation) as i64 - pad as i64;
            i >= 0 && (i as usize) < input
        };
        let lo = (0..kernel).find(|&t| valid(t)).unwrap_or(kernel);
        let hi = (lo..kernel)
            .take_while(|&t| valid(t))
            .last()
            .map_or(lo, |t| t + 1);
        match classes.last_mut() {
            Some(last) if last.1 == o && last.2 == lo && last.3 == hi => last.1 = o + 1,
            _ => classes.push((o, o + 1, lo, hi)),
        }
    }
    classes
}

/// How a run of pixels (or Winograd tiles) is cut into GEMM tiles of at
/// most `most` rows ([`native::Isa::split`]). Each output is the same sum
/// in the same order either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TileSplit {
    /// As few tiles as cover the run, their sizes as even as they can be:
    /// with AVX2's 6 rows, 7 pixels run as 4 + 3, not 6 + 1, and 49 as
    /// 4 x 6 + 5 x 5, not 8 x 6 + 1.
    Even,
    /// Full tiles, then one of the rest: 49 as 3 x 14 + 7.
    FullFirst,
}

impl TileSplit {
    /// How `native`'s tiles cut a run ([`native::Isa::split`]); Cranelift's
    /// tile, evenly.
    pub(crate) fn of(native: Option<native::Isa>) -> TileSplit {
        native.map_or(TileSplit::Even, native::Isa::split)
    }

    /// `n` items as `(rows, count)` runs of tiles of at most `most` rows,
    /// the larger rows first, empty runs left out.
    pub(crate) fn runs(self, n: usize, most: usize) -> impl Iterator<Item = (usize, usize)> {
        let most = most.max(1);
        let runs = match self {
            TileSplit::Even => {
                let calls = n.div_ceil(most).max(1);
                let (rows, larger) = (n / calls, n % calls);
                [(rows + 1, larger), (rows, calls - larger)]
            }
            TileSplit::FullFirst => [(most, n / most), (n % most, 1)],
        };
        runs.into_iter()
            .filter(|&(rows, count)| rows > 0 && count > 0)
    }
}

/// A loop per run of `split.runs(n, most)`: `body(b, first, rows)` for
/// each tile, `first` the index of its first item.
pub(crate) fn for_tiles(
    b: &mut FunctionBuilder,
    n: usize,
    (most, split): (usize, TileSplit),
    mut body: impl FnMut(&mut FunctionBuilder, Value, usize),
) {
    let mut from = 0;
    for (rows, count) in split.runs(n, most) {
        let lo = int(b, from as i64);
        from += rows * count;
        let hi = int(b, from as i64);
        for_range(b, lo, hi, rows as i64, |b, first| body(b, first, rows));
    }
}

/// `for iv in (start..end).step_by(step) { body(iv) }`, a top-tested loop over
/// `I64` values.
pub(crate) fn for_range(
    b: &mut FunctionBuilder,
    start: Value,
    end: Value,
    step: i64,
    mut body: impl FnMut(&mut FunctionBuilder, Value),
) {
    let header = b.create_block();
    let body_block = b.create_block();
    let exit = b.create_block();
    b.append_block_param(header, types::I64);
    b.ins().jump(header, &[BlockArg::Value(start)]);
    b.switch_to_block(header);
    let iv = b.block_params(header)[0];
    let more = b.ins().icmp(
        cranelift_codegen::ir::condcodes::IntCC::SignedLessThan,
        iv,
        end,
    );
    b.ins().brif(more, body_block, &[], exit, &[]);
    b.switch_to_block(body_block);
    body(b, iv);
    let next = b.ins().iadd_imm_s(iv, step);
    b.ins().jump(header, &[BlockArg::Value(next)]);
    b.switch_to_block(exit);
}

/// A constant `I64`.
pub(crate) fn int(b: &mut FunctionBuilder, n: i64) -> Value {
    b.ins().iconst(types::I64, n)
}

/// Stores `words` into `slot`, 8 bytes apart from its start: a native
/// kernel's `#[repr(C)]` struct of `i64`s, in field order.
pub(crate) fn store_words(b: &mut FunctionBuilder, slot: StackSlot, words: &[i64]) {
    for (i, &word) in words.iter().enumerate() {
        let word = int(b, word);
        b.ins().stack_store(types::I64, word, slot, (i * 8) as i32);
    }
}

/// Copies `len` `f32`s from `from` to `to`, or zeroes them if `from` is
/// `None`. Ascending, each vector loaded before it is stored, so `to` may
/// overlap `from` if it is the lower address.
pub(crate) fn copy_floats(b: &mut FunctionBuilder, from: Option<Value>, to: Value, len: usize) {
    const UNROLL: usize = 4;
    let chunk = 4 * UNROLL;
    let full = len / chunk;
    let load = |b: &mut FunctionBuilder, at: Option<Value>, offset: i64, lanes: usize| match at {
        Some(at) => vector::load_partial(b, at, offset, lanes),
        None => vector::splat(b, 0.0),
    };
    if full > 0 {
        let zero = int(b, 0);
        let end = int(b, (full * chunk * 4) as i64);
        for_range(b, zero, end, (chunk * 4) as i64, |b, offset| {
            let src = from.map(|from| b.ins().iadd(from, offset));
            let dst = b.ins().iadd(to, offset);
            for v in 0..UNROLL as i64 {
                let x = load(b, src, 16 * v, 4);
                vector::store_partial(b, x, dst, 16 * v, 4);
            }
        });
    }
    for at in (full * chunk..len).step_by(4) {
        let lanes = (len - at).min(4);
        let x = load(b, from, at as i64 * 4, lanes);
        vector::store_partial(b, x, to, at as i64 * 4, lanes);
    }
}

/// `max(lo, min(x, hi))` of runtime `x` and constants.
pub(crate) fn clamp(b: &mut FunctionBuilder, x: Value, lo: i64, hi: i64) -> Value {
    let lo = int(b, lo);
    let hi = int(b, hi);
    let x = b.ins().smax(x, lo);
    b.ins().smin(x, hi)
}

#[cfg(test)]
mod tests {
    use super::{on_threads, tap_classes, TileSplit};
    use proptest::prelude::*;

    #[test]
    fn on_threads_keeps_the_items_order_for_any_thread_count() {
        let squares: Vec<u64> = (0..50u64).map(|i| i * i).collect();
        for threads in [0, 1, 2, 3, 64] {
            let got = on_threads(threads, (0..50u64).collect(), |i| {
                // Uneven work, so that threads finish items out of order.
                std::thread::sleep(std::time::Duration::from_micros((i % 7) * 100));
                i * i
            });
            assert_eq!(got, squares, "{threads} threads");
        }
        assert_eq!(on_threads(4, Vec::<u64>::new(), |i| i), Vec::<u64>::new());
    }

    #[test]
    fn tap_classes_split_borders_from_the_interior() {
        // 3 taps, stride 1, pad 1 on 5 inputs: output 0 has taps 1..3, 1..=3 all, 4 has 0..2.
        assert_eq!(
            tap_classes(5, 5, 3, 1, 1, 1),
            vec![(0, 1, 1, 3), (1, 4, 0, 3), (4, 5, 0, 2)]
        );
        // 7 taps, stride 2, pad 3 on 8 inputs (4 outputs): output 0 reads inputs -3..=3 -> taps 3..7.
        assert_eq!(tap_classes(4, 8, 7, 2, 1, 3)[0], (0, 1, 3, 7));
    }

    #[test]
    fn tile_splits_cut_a_run_evenly_or_full_tiles_first() {
        // ResNet's 7x7 maps on AVX2's 6-row tile: two calls for a row of 7,
        // nine for 49 pixels (ceil(49 / 6)), 49 = 4 x 6 + 5 x 5.
        let even = |n, most| TileSplit::Even.runs(n, most).collect::<Vec<_>>();
        assert_eq!(even(7, 6), [(4, 1), (3, 1)]);
        assert_eq!(even(49, 6), [(6, 4), (5, 5)]);
        assert_eq!(even(12, 6), [(6, 2)]);
        assert_eq!(TileSplit::Even.runs(0, 6).count(), 0);
        // On AVX-512's 14 rows: 49 = 3 x 14 + 7, 169 = 12 x 14 + 1, 28 = 2 x 14.
        let full = |n, most| TileSplit::FullFirst.runs(n, most).collect::<Vec<_>>();
        assert_eq!(full(49, 14), [(14, 3), (7, 1)]);
        assert_eq!(full(169, 14), [(14, 12), (1, 1)]);
        assert_eq!(full(28, 14), [(14, 2)]);
        assert_eq!(TileSplit::FullFirst.runs(0, 14).count(), 0);
    }

    proptest! {
        #[test]
        fn tile_splits_cover_n_in_the_fewest_tiles(n in 0usize..400, most in 1usize..20) {
            for split in [TileSplit::Even, TileSplit::FullFirst] {
                let runs: Vec<(usize, usize)> = split.runs(n, most).collect();
                let covered: usize = runs.iter().map(|(rows, count)| rows * count).sum();
                let calls: usize = runs.iter().map(|(_, count)| count).sum();
                prop_assert_eq!(covered, n);
                prop_assert_eq!(calls, n.div_ceil(most));
                prop_assert!(runs.iter().all(|&(rows, _)| (1..=most).contains(&rows)));
                prop_assert!(runs.windows(2).all(|w| w[0].0 > w[1].0));
                let sizes: Vec<usize> = runs.iter().flat_map(|&(rows, count)| vec![rows; count]).collect();
                match split {
                    TileSplit::Even => prop_assert!(runs.windows(2).all(|w| w[0].0 == w[1].0 + 1)),
                    TileSplit::FullFirst => {
                        prop_assert!(sizes.iter().rev().skip(1).all(|&rows| rows == most))
                    }
                }
            }
        }
    }
}
