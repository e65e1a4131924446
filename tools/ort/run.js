#!/usr/bin/env node
// Runs a decoder ONNX model (optimum's text-generation-with-past layout) with ONNX Runtime (CPU)
// and prints what it computed as JSON on stdout. Used by lowbit's tests to check the ONNX models
// lowbit writes and reads.
//
// Usage:
//   node tools/ort/run.js MODEL.onnx --ids 1,2,3 [--steps N] [--threads T] [--opt all|none]
//
//   --ids      the prompt token ids (comma-separated), batch 1
//   --steps    greedy single-token steps after the prompt (default 4)
//   --threads  intra-op threads (default 1: results do not depend on the machine)
//   --opt      ONNX Runtime graph optimizations (default none: the graph as written is run)
//
// Step 0 feeds the prompt with empty past (past_key_values.N.key/value of shape
// [1, kv_heads, 0, head_dim]), attention_mask all ones, position_ids 0..n-1. Each further step
// feeds the previous step's greedy token, present.N.* as past_key_values.N.*, the mask over past +
// 1 tokens and the next position. Inputs the model does not declare (position_ids, attention_mask)
// are not fed; a model without past inputs is re-run on the whole sequence at each step.
//
// Output: {"inputs": [...], "outputs": [...], "logits": [[...], ...], "greedy": [...]}
//   logits[s]: the last position's logits after step s (steps + 1 rows);
//   greedy[s]: their argmax (the token fed at step s + 1).
// Errors: one line on stderr ("run.js: <problem>"), exit code 2.
'use strict';

const path = require('path');

function die(msg) {
  process.stderr.write(`run.js: ${msg}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const a = {model: null, ids: null, steps: 4, threads: 1, opt: 'none'};
  for (let i = 0; i < argv.length; ++i) {
    const k = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) die(`${k} needs a value`);
      return argv[++i];
    };
    if (k === '--ids') {
      a.ids = next().split(',').filter((s) => s.length > 0).map((s) => {
        if (!/^\d+$/.test(s)) die(`bad token id '${s}'`);
        return Number(s);
      });
    } else if (k === '--steps') {
      a.steps = Number(next());
      if (!Number.isInteger(a.steps) || a.steps < 0) die('--steps must be an integer >= 0');
    } else if (k === '--threads') {
      a.threads = Number(next());
      if (!Number.isInteger(a.threads) || a.threads < 1) die('--threads must be an integer >= 1');
    } else if (k === '--opt') {
      a.opt = next();
      if (a.opt !== 'all' && a.opt !== 'none') die('--opt must be all or none');
    } else if (k.startsWith('--')) {
      die(`unknown option ${k}`);
    } else if (a.model === null) {
      a.model = k;
    } else {
      die(`unexpected argument ${k}`);
    }
  }
  if (a.model === null) die('usage: run.js MODEL.onnx --ids 1,2,3 [--steps N] [--threads T] [--opt all|none]');
  if (a.ids === null || a.ids.length === 0) die('--ids needs at least one token id');
  return a;
}

function argmax(arr, off, n) {
  let best = 0;
  for (let i = 1; i < n; ++i) if (arr[off + i] > arr[off + best]) best = i;
  return best;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  let ort;
  try {
    ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));
  } catch (e) {
    die(`onnxruntime-node is not installed in ${__dirname}/node_modules (run scripts/setup.sh)`);
  }
  const opts = {
    intraOpNumThreads: args.threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: args.opt === 'all' ? 'all' : 'disabled',
    executionProviders: ['cpu'],
    logSeverityLevel: 4,
  };
  let session;
  try {
    session = await ort.InferenceSession.create(args.model, opts);
  } catch (e) {
    die(`${args.model}: ${String(e.message || e).split('\n')[0]}`);
  }
  const inputs = session.inputNames;
  const outputs = session.outputNames;
  if (!inputs.includes('input_ids')) die(`${args.model}: no input_ids input`);
  if (!outputs.includes('logits')) die(`${args.model}: no logits output`);
  const pastNames = inputs.filter((n) => n.startsWith('past_key_values.'));
  const meta = {};
  for (const m of session.inputMetadata || []) meta[m.name] = m;
  const emptyPast = {};
  for (const name of pastNames) {
    const shape = meta[name] && meta[name].shape;
    if (!shape || shape.length !== 4 || typeof shape[1] !== 'number' || typeof shape[3] !== 'number') {
      die(`${args.model}: ${name} has no fixed [batch, kv_heads, past, head_dim] shape`);
    }
    emptyPast[name] = new ort.Tensor('float32', new Float32Array(0), [1, shape[1], 0, shape[3]]);
  }
  const int64 = (vals, dims) => new ort.Tensor('int64', BigInt64Array.from(vals.map((v) => BigInt(v))), dims);

  const seq = args.ids.slice();
  let past = emptyPast;
  let pastLen = 0;
  const logitsOut = [];
  const greedy = [];
  for (let step = 0; step <= args.steps; ++step) {
    const usePast = pastNames.length > 0;
    const fed = usePast ? (step === 0 ? seq.slice() : [seq[seq.length - 1]]) : seq.slice();
    const start = usePast ? pastLen : 0;
    const feeds = {input_ids: int64(fed, [1, fed.length])};
    if (inputs.includes('attention_mask')) {
      feeds.attention_mask = int64(new Array(start + fed.length).fill(1), [1, start + fed.length]);
    }
    if (inputs.includes('position_ids')) {
      feeds.position_ids = int64(fed.map((_, i) => start + i), [1, fed.length]);
    }
    for (const name of pastNames) feeds[name] = past[name];
    let res;
    try {
      res = await session.run(feeds);
    } catch (e) {
      die(`${args.model}: step ${step}: ${String(e.message || e).split('\n')[0]}`);
    }
    const logits = res.logits;
    const dims = logits.dims;
    if (dims.length !== 3 || dims[0] !== 1 || dims[1] !== fed.length) {
      die(`${args.model}: logits of shape [${dims}] for ${fed.length} tokens`);
    }
    const vocab = dims[2];
    const off = (fed.length - 1) * vocab;
    const row = Array.from(logits.data.subarray(off, off + vocab));
    logitsOut.push(row);
    const next = argmax(logits.data, off, vocab);
    greedy.push(next);
    if (usePast) {
      const np = {};
      for (const name of pastNames) {
        const pres = 'present.' + name.slice('past_key_values.'.length);
        if (!res[pres]) die(`${args.model}: no ${pres} output for ${name}`);
        np[name] = res[pres];
      }
      past = np;
      pastLen = start + fed.length;
      const got = past[pastNames[0]].dims[2];
      if (got !== pastLen) die(`${args.model}: ${pastNames[0]} has ${got} positions after step ${step}, expected ${pastLen}`);
    }
    seq.push(next);
  }
  process.stdout.write(JSON.stringify({inputs, outputs, logits: logitsOut, greedy}) + '\n');
}

main().catch((e) => die(String(e.message || e).split('\n')[0]));
