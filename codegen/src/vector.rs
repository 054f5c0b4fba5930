//! `f32x4` building blocks shared by the kernel families: loads and stores at
//! constant offsets, constants, and every activation of the language as
//! vector code (`exp` by range reduction and a polynomial, tanh as a ratio of
//! polynomials, so sigmoid, tanh and swish fuse like the others); `ln`, for
//! the powers of local response normalisation.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, InstBuilder, MemFlagsData, Value};
use cranelift_frontend::FunctionBuilder;

use cnnjit_ir::Activation;

/// Loads and stores cannot trap (the kernel contract keeps them in bounds)
/// but are not marked aligned: channel offsets make many of them 4-byte aligned
/// only, which an SSE memory operand would fault on.
fn flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// `base + offset` bytes, folding the offset into the instruction when it fits.
fn address(b: &mut FunctionBuilder, base: Value, offset: i64) -> (Value, i32) {
    match i32::try_from(offset) {
        Ok(o) => (base, o),
        Err(_) => (b.ins().iadd_imm_s(base, offset), 0),
    }
}

/// Loads four `f32`s at `base + offset` bytes.
pub fn load4(b: &mut FunctionBuilder, base: Value, offset: i64) -> Value {
    let (p, o) = address(b, base, offset);
    b.ins().load(types::F32X4, flags(), p, o)
}

/// Loads one `f32` at `base + offset` bytes, splatted to four lanes. The
/// load is marked read-only (a kernel never writes its inputs) so that
/// Cranelift folds it into one `vbroadcastss` from memory.
pub fn load_splat(b: &mut FunctionBuilder, base: Value, offset: i64) -> Value {
    let (p, o) = address(b, base, offset);
    let x = b.ins().load(types::F32, flags().with_readonly(), p, o);
    b.ins().splat(types::F32X4, x)
}

/// Loads the first `lanes` (1 to 4) `f32`s at `base + offset`, zero elsewhere:
/// never reads past them.
pub fn load_partial(b: &mut FunctionBuilder, base: Value, offset: i64, lanes: usize) -> Value {
    if lanes >= 4 {
        return load4(b, base, offset);
    }
    let mut v = splat(b, 0.0);
    for lane in 0..lanes {
        let (p, o) = address(b, base, offset + 4 * lane as i64);
        let x = b.ins().load(types::F32, flags(), p, o);
        v = b.ins().insertlane(v, x, lane as u8);
    }
    v
}

/// Stores the first `lanes` (1 to 4) lanes of `v` at `base + offset`.
pub fn store_partial(b: &mut FunctionBuilder, v: Value, base: Value, offset: i64, lanes: usize) {
    if lanes >= 4 {
        let (p, o) = address(b, base, offset);
        b.ins().store(flags(), v, p, o);
        return;
    }
    for lane in 0..lanes {
        let x = b.ins().extractlane(v, lane as u8);
        let (p, o) = address(b, base, offset + 4 * lane as i64);
        b.ins().store(flags(), x, p, o);
    }
}

/// Four lanes of `x`.
pub fn splat(b: &mut FunctionBuilder, x: f32) -> Value {
    let s = b.ins().f32const(x);
    b.ins().splat(types::F32X4, s)
}

/// `x * y + acc` as one fused multiply-add. (The design notes measured
/// `fmul` + `fadd` faster in an earlier prototype; in these kernels `fma` is
/// faster: 0.78 against 0.65 of the 128-bit peak on the 56x56x128 3x3 conv,
/// as it halves the instructions and frees the register a product needs.)
/// Without FMA hardware (an old x86-64) it is `fmul` then `fadd`.
pub fn mul_add(b: &mut FunctionBuilder, x: Value, y: Value, acc: Value) -> Value {
    if host_has_fma() {
        b.ins().fma(x, y, acc)
    } else {
        let p = b.ins().fmul(x, y);
        b.ins().fadd(acc, p)
    }
}

/// Whether the host executes vector fused multiply-adds natively (the JIT
/// compiles for the host it runs on).
fn host_has_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static FMA: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *FMA.get_or_init(|| std::arch::is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        true
    }
}

/// `x < lo ? lo : x`, lane-wise: one `maxps` on x86-64, where Cranelift's
/// `fmax` (which must order -0 below +0 and propagate either NaN) is nine
/// instructions, most of the epilogue around a short tile. A NaN `x` stays a
/// NaN and -0 stays -0, as in the reference kernels.
pub fn at_least(b: &mut FunctionBuilder, x: Value, lo: Value) -> Value {
    let below = b.ins().fcmp(FloatCC::LessThan, x, lo);
    let below = b.ins().bitcast(types::F32X4, MemFlagsData::new(), below);
    b.ins().bitselect(below, lo, x)
}

/// `hi < x ? hi : x`, lane-wise: one `minps` on x86-64, as [`at_least`].
pub fn at_most(b: &mut FunctionBuilder, x: Value, hi: Value) -> Value {
    let above = b.ins().fcmp(FloatCC::LessThan, hi, x);
    let above = b.ins().bitcast(types::F32X4, MemFlagsData::new(), above);
    b.ins().bitselect(above, hi, x)
}

/// [`exp`]'s clamp of `x`: `e^x` is neither 0 nor infinite inside it.
pub(crate) const EXP_RANGE: [f32; 2] = [-87.0, 88.0];
/// [`exp`] takes a reduced argument `r` smaller than this in magnitude as 0.
/// Its polynomial is then exactly 1.0 either way (`1 + r` rounds to 1 below
/// 2^-25), but `r^4` of such an `r` is subnormal, and Intel cores compute
/// subnormal results by microcode assists of about a hundred cycles each: a
/// swish of near-zero inputs, as deep in a network of shrinking activations,
/// ran 5-10x slower (EfficientNet-B0 with random weights on a Xeon, one
/// thread: 19.0 ms before, 11.2 after, 10.7 with the CPU's flush-to-zero
/// mode set; BENCHMARKS.md, session 16).
pub(crate) const EXP_TINY: f32 = 1.0 / (1u64 << 30) as f32;
/// [`exp`]'s ln 2 in two parts, `hi` exact in few bits, then `lo`.
pub(crate) const EXP_LN2: [f32; 2] = [0.693_359_4, -2.121_944_4e-4];
/// [`exp`]'s Taylor coefficients of `e^r`, highest degree first.
pub(crate) const EXP_POLY: [f32; 7] = [
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
    1.0,
    1.0,
];
/// [`tanh`]'s clamp: past +-7.9053, tanh rounds to +-1 in `f32`.
pub(crate) const TANH_LIMIT: f32 = 7.905_311_107_635_498_f64 as f32;
/// [`tanh`]'s numerator in `x^2`, highest degree first (times `x` after).
pub(crate) const TANH_P: [f32; 7] = [
    -2.760_768_477_423_55e-16_f64 as f32,
    2.000_187_904_824_77e-13_f64 as f32,
    -8.604_671_522_137_35e-11_f64 as f32,
    5.122_297_090_371_14e-8_f64 as f32,
    1.485_722_357_179_79e-5_f64 as f32,
    6.372_619_288_754_36e-4_f64 as f32,
    4.893_524_558_917_86e-3_f64 as f32,
];
/// [`tanh`]'s denominator in `x^2`, highest degree first.
pub(crate) const TANH_Q: [f32; 4] = [
    1.198_258_394_667_02e-6_f64 as f32,
    1.185_347_056_866_54e-4_f64 as f32,
    2.268_434_632_439e-3_f64 as f32,
    4.893_525_185_543_85e-3_f64 as f32,
];
/// [`erf`]'s clamp: past +-4, erf rounds to +-1 in `f32` (and the rational
/// below gives exactly +-1 there).
pub(crate) const ERF_LIMIT: f32 = 4.0;
/// [`erf`]'s numerator in `x^2`, highest degree first (times `x` after):
/// Eigen's rational minimax approximation of float erf (`generic_fast_erf`,
/// also XNNPACK's), odd degree 13 over even degree 8.
pub(crate) const ERF_P: [f32; 7] = [
    -2.726_142_258_013_06e-10_f64 as f32,
    2.770_681_424_959_02e-8_f64 as f32,
    -2.101_024_020_825_08e-6_f64 as f32,
    -5.692_506_394_623_46e-5_f64 as f32,
    -7.349_906_303_268_55e-4_f64 as f32,
    -2.954_599_808_540_25e-3_f64 as f32,
    -1.609_603_332_624_15e-2_f64 as f32,
];
/// [`erf`]'s denominator in `x^2`, highest degree first.
pub(crate) const ERF_Q: [f32; 5] = [
    -1.456_607_184_649_96e-5_f64 as f32,
    -2.133_740_552_789_05e-4_f64 as f32,
    -1.682_826_974_382_03e-3_f64 as f32,
    -7.373_329_167_204_68e-3_f64 as f32,
    -1.426_473_905_141_89e-2_f64 as f32,
];
/// hard_sigmoid's `1 / 6`.
pub(crate) const SIXTH: f32 = 1.0 / 6.0;

/// e^x, lane-wise: `x = n ln2 + r`, `2^n` built in the exponent bits, `e^r`
/// by its Taylor polynomial to degree 6 in Estrin's form (relative error below
/// 2e-7 on |r| <= ln2/2); `r = x - n ln2` by two multiply-adds, and 0 where
/// it is below `EXP_TINY`, so no step's result is subnormal.
pub fn exp(b: &mut FunctionBuilder, x: Value) -> Value {
    let lo = splat(b, EXP_RANGE[0]);
    let hi = splat(b, EXP_RANGE[1]);
    let x = at_least(b, x, lo);
    let x = at_most(b, x, hi);
    let log2e = splat(b, std::f32::consts::LOG2_E);
    let t = b.ins().fmul(x, log2e);
    let n = b.ins().nearest(t);
    let ln2_hi = splat(b, -EXP_LN2[0]);
    let ln2_lo = splat(b, -EXP_LN2[1]);
    let r = mul_add(b, n, ln2_hi, x);
    let r = mul_add(b, n, ln2_lo, r);
    let r = zero_if_tiny(b, r, EXP_TINY);
    // Estrin's form: (1 + r) + r^2 (1/2 + r/6) + r^4 (1/24 + r/120 + r^2/720),
    // three multiply-adds deep where Horner's form is six, so the chain an
    // activation's latency is made of is shorter.
    // `c[d]`: the coefficient of `r^d`.
    let c: [Value; 7] = std::array::from_fn(|d| splat(b, EXP_POLY[6 - d]));
    let a0 = mul_add(b, r, c[1], c[0]);
    let a1 = mul_add(b, r, c[3], c[2]);
    let a2 = mul_add(b, r, c[5], c[4]);
    let r2 = b.ins().fmul(r, r);
    let b0 = mul_add(b, a1, r2, a0);
    let b1 = mul_add(b, r2, c[6], a2);
    let r4 = b.ins().fmul(r2, r2);
    let p = mul_add(b, b1, r4, b0);
    let ni = b.ins().fcvt_to_sint_sat(types::I32X4, n);
    let bias = b.ins().iconst(types::I32, 127);
    let bias = b.ins().splat(types::I32X4, bias);
    let e = b.ins().iadd(ni, bias);
    let e = b.ins().ishl_imm_s(e, 23);
    let scale = b.ins().bitcast(types::F32X4, MemFlagsData::new(), e);
    b.ins().fmul(p, scale)
}

/// `|x| < tiny ? +0 : x`, lane-wise (a NaN stays).
fn zero_if_tiny(b: &mut FunctionBuilder, x: Value, tiny: f32) -> Value {
    let magnitude = b.ins().fabs(x);
    let tiny = splat(b, tiny);
    let is_tiny = b.ins().fcmp(FloatCC::LessThan, magnitude, tiny);
    let is_tiny = b.ins().bitcast(types::F32X4, MemFlagsData::new(), is_tiny);
    let zero = splat(b, 0.0);
    b.ins().bitselect(is_tiny, zero, x)
}

/// ln x, lane-wise, for positive normal `x`: musl's `logf` (after FreeBSD):
/// `x = 2^k (1 + f)` with `1 + f` in `[sqrt(2)/2, sqrt(2))` (the exponent
/// split off with the mantissa's rollover moved to `sqrt(2)` by one integer
/// add), then `ln(1 + f)` from `s = f / (2 + f)` by a minimax polynomial in
/// `s^2` (error below 1 ulp).
pub fn ln(b: &mut FunctionBuilder, x: Value) -> Value {
    let int4 = |b: &mut FunctionBuilder, n: i32| {
        let n = b.ins().iconst(types::I32, i64::from(n));
        b.ins().splat(types::I32X4, n)
    };
    const SQRT_HALF_BITS: i32 = 0x3f35_04f3;
    let bits = b.ins().bitcast(types::I32X4, MemFlagsData::new(), x);
    let shift = int4(b, 0x3f80_0000 - SQRT_HALF_BITS);
    let bits = b.ins().iadd(bits, shift);
    let k = b.ins().ushr_imm_s(bits, 23);
    let bias = int4(b, 0x7f);
    let k = b.ins().isub(k, bias);
    let k = b.ins().fcvt_from_sint(types::F32X4, k);
    let mantissa = int4(b, 0x007f_ffff);
    let m = b.ins().band(bits, mantissa);
    let offset = int4(b, SQRT_HALF_BITS);
    let m = b.ins().iadd(m, offset);
    let m = b.ins().bitcast(types::F32X4, MemFlagsData::new(), m);
    let one = splat(b, 1.0);
    let f = b.ins().fsub(m, one);
    let two = splat(b, 2.0);
    let d = b.ins().fadd(f, two);
    let s = b.ins().fdiv(f, d);
    let z = b.ins().fmul(s, s);
    let w = b.ins().fmul(z, z);
    // musl's coefficients, by their bits (0xaaaaaa.0p-24, 0xccce13.0p-25, ...).
    let [lg1, lg2, lg3, lg4] =
        [0x3f2a_aaaa, 0x3ecc_ce13, 0x3e91_e9ee, 0x3e78_9e26].map(f32::from_bits);
    let lg4 = splat(b, lg4);
    let lg2 = splat(b, lg2);
    let t1 = mul_add(b, w, lg4, lg2);
    let t1 = b.ins().fmul(t1, w);
    let lg3 = splat(b, lg3);
    let lg1 = splat(b, lg1);
    let t2 = mul_add(b, w, lg3, lg1);
    let t2 = b.ins().fmul(t2, z);
    let r = b.ins().fadd(t2, t1);
    let half = splat(b, 0.5);
    let hfsq = b.ins().fmul(f, f);
    let hfsq = b.ins().fmul(hfsq, half);
    // ln 2 = hi + lo, hi with its low mantissa bits zero so that k hi is exact.
    let ln2_hi = splat(b, f32::from_bits(0x3f31_7180));
    let ln2_lo = splat(b, f32::from_bits(0x3717_f7d1));
    // s (hfsq + R) + k ln2_lo - hfsq + f + k ln2_hi, in musl's order.
    let sum = b.ins().fadd(hfsq, r);
    let y = b.ins().fmul(s, sum);
    let y = mul_add(b, k, ln2_lo, y);
    let y = b.ins().fsub(y, hfsq);
    let y = b.ins().fadd(y, f);
    mul_add(b, k, ln2_hi, y)
}

fn sigmoid(b: &mut FunctionBuilder, x: Value) -> Value {
    let nx = b.ins().fneg(x);
    let e = exp(b, nx);
    let one = splat(b, 1.0);
    let d = b.ins().fadd(one, e);
    b.ins().fdiv(one, d)
}

/// tanh, lane-wise: Eigen's rational minimax approximation (an odd degree-13
/// over an even degree-6 polynomial, `x` clamped to +-7.9053, past which
/// tanh rounds to +-1 in `f32`). Half the operations of `2 sigmoid(2x) - 1`
/// (LeNet-5 spends a third of its time in tanh), and accurate near 0.
fn tanh(b: &mut FunctionBuilder, x: Value) -> Value {
    odd_rational(b, x, TANH_LIMIT, &TANH_P, &TANH_Q)
}

/// erf, lane-wise: Eigen's rational approximation ([`ERF_P`], [`ERF_Q`]),
/// `x` clamped to +-4. Its largest error, measured against `f64` erf on
/// 200001 points of [-6, 6], is 3.3e-7 (a few ulp of 1); gelu built on it
/// (`x (erf(x / sqrt 2) / 2 + 1/2)`) errs by at most 1.9e-7 max(1, |x|)
/// (`runtime/tests/it/gelu.rs` bounds it by 3e-7 max(1, |x|) everywhere).
fn erf(b: &mut FunctionBuilder, x: Value) -> Value {
    odd_rational(b, x, ERF_LIMIT, &ERF_P, &ERF_Q)
}

/// `x p(x^2) / q(x^2)` with `x` clamped to `+-limit`, the polynomials'
/// coefficients highest degree first (Horner's order): tanh's and erf's shape.
fn odd_rational(b: &mut FunctionBuilder, x: Value, limit: f32, p: &[f32], q: &[f32]) -> Value {
    let lo = splat(b, -limit);
    let hi = splat(b, limit);
    let x = at_least(b, x, lo);
    let x = at_most(b, x, hi);
    let x2 = b.ins().fmul(x, x);
    let horner = |b: &mut FunctionBuilder, coefficients: &[f32]| {
        let mut acc = splat(b, coefficients[0]);
        for &c in &coefficients[1..] {
            let c = splat(b, c);
            acc = mul_add(b, acc, x2, c);
        }
        acc
    };
    let p = horner(b, p);
    let q = horner(b, q);
    let p = b.ins().fmul(p, x);
    b.ins().fdiv(p, q)
}

/// gelu, lane-wise: `x (erf(x / sqrt 2) / 2 + 1/2)`, the half and the half
/// added by one FMA.
fn gelu(b: &mut FunctionBuilder, x: Value) -> Value {
    let inv_sqrt2 = splat(b, std::f32::consts::FRAC_1_SQRT_2);
    let t = b.ins().fmul(x, inv_sqrt2);
    let e = erf(b, t);
    let half = splat(b, 0.5);
    let h = mul_add(b, e, half, half);
    b.ins().fmul(x, h)
}

/// `max(x, 0) + slope min(x, 0)`, lane-wise: leaky_relu with a slope per
/// lane (prelu's, read per channel).
pub fn leaky(b: &mut FunctionBuilder, x: Value, slope: Value) -> Value {
    let zero = splat(b, 0.0);
    let pos = at_least(b, x, zero);
    let neg = at_most(b, x, zero);
    mul_add(b, neg, slope, pos)
}

/// `act(x)`, lane-wise.
pub fn activate(b: &mut FunctionBuilder, act: Activation, x: Value) -> Value {
    let zero = splat(b, 0.0);
    match act {
        Activation::Relu => at_least(b, x, zero),
        Activation::Relu6 => {
            let six = splat(b, 6.0);
            let r = at_least(b, x, zero);
            at_most(b, r, six)
        }
        Activation::LeakyRelu(slope) => {
            let slope = splat(b, slope);
            leaky(b, x, slope)
        }
        Activation::Sigmoid => sigmoid(b, x),
        Activation::Tanh => tanh(b, x),
        Activation::Gelu => gelu(b, x),
        Activation::Swish => {
            let s = sigmoid(b, x);
            b.ins().fmul(x, s)
        }
        Activation::HardSigmoid | Activation::HardSwish => {
            let three = splat(b, 3.0);
            let six = splat(b, 6.0);
            let sixth = splat(b, SIXTH);
            let t = b.ins().fadd(x, three);
            let t = at_least(b, t, zero);
            let t = at_most(b, t, six);
            let hs = b.ins().fmul(t, sixth);
            if act == Activation::HardSwish {
                b.ins().fmul(x, hs)
            } else {
                hs
            }
        }
    }
}
