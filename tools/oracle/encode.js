#!/usr/bin/env node
// Reference token ids from Hugging Face tokenizers (Rust, via npm) for lowbit's oracle test.
// usage: node encode.js TOKENIZER_JSON TEXT_FILE MODE [--no-special]
//   MODE whole: the file is one text; lines: each '\n'-separated line is a text;
//   jsonl: each line is a JSON object whose "text" is a text.
// Output (stdout): one line of space-separated ids per text.
const fs = require("fs");
const path = require("path");
const { Tokenizer } = require(path.join(__dirname, "node_modules", "tokenizers"));

async function main() {
  const [tokPath, textPath, mode = "whole", flag] = process.argv.slice(2);
  if (!tokPath || !textPath) {
    console.error("usage: node encode.js TOKENIZER_JSON TEXT_FILE [whole|lines|jsonl] [--no-special]");
    process.exit(2);
  }
  const addSpecialTokens = flag !== "--no-special";
  const tok = Tokenizer.fromFile(tokPath);
  const raw = fs.readFileSync(textPath, "utf8");
  let texts;
  if (mode === "whole") texts = [raw];
  else if (mode === "lines") texts = raw.split("\n");
  else if (mode === "jsonl") texts = raw.split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l).text);
  else throw new Error("unknown mode " + mode);
  const out = [];
  for (const t of texts) {
    const enc = await tok.encode(t, null, { addSpecialTokens });
    out.push(Array.from(enc.getIds()).join(" "));
  }
  process.stdout.write(out.join("\n") + "\n");
}

main().catch((e) => {
  console.error(String(e));
  process.exit(1);
});
