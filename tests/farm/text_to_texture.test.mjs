// node --test tests/farm/ : the Flamenco job type compiled against the stand-in author API.

import assert from "node:assert/strict";
import { test } from "node:test";

import { commandLine, compile, load } from "./flamenco_standin.mjs";

const BASE = {
  folder: "/farm/shots", files: "a.blend;b.blend; c.blend", provider: "MESHY",
  prompt: "{name}, weathered bronze", output_dir: "/farm/out", resolution: "2048",
};

test("the job type declares the settings a submitter fills in", () => {
  const { JOB_TYPE } = load();
  const keys = JOB_TYPE.settings.map((s) => s.key);
  for (const key of ["folder", "files", "provider", "prompt", "prompts_file", "resolution",
                     "online_mode", "output_dir", "chunks_per_file", "jobs_at_once",
                     "max_workers", "plan_jobs_at_once"]) {
    assert.ok(keys.includes(key), key);
  }
  for (const s of JOB_TYPE.settings) {
    assert.ok(["string", "int32", "float", "bool"].includes(s.type), s.key);
    assert.ok(s.description, `${s.key} is described`);
  }
  const files = JOB_TYPE.settings.find((s) => s.key === "files");
  assert.match(files.eval, /glob\('\*\.blend'\)/); // filled from the folder in Blender
});

test("three files: one task each, the exact command a Worker runs", () => {
  const tasks = compile(BASE);
  assert.deepEqual(tasks.map((t) => [t.name, t.type]),
                   [["texture-a", "blender"], ["texture-b", "blender"],
                    ["texture-c", "blender"]]);
  assert.deepEqual(commandLine(tasks[0].commands[0]), [
    "{blender}", "-b", "--online-mode", "/farm/shots/a.blend",
    "--command", "text_to_texture", "--provider", "MESHY", "--resolution", "2048",
    "--prompt", "{name}, weathered bronze", "--collection", "Scene Collection",
    "--jobs-at-once", "2", "--output", "/farm/out/a.blend",
  ]);
  assert.equal(tasks[0].commands[0].name, "blender-render");
  assert.equal(tasks[2].commands[0].parameters.blendfile, "/farm/shots/c.blend");
  assert.deepEqual(tasks.map((t) => t.dependencies.length), [0, 0, 0]); // 3 ≤ 4 lanes
});

test("chunks: N tasks per file, each its slice and its own output file", () => {
  const tasks = compile({ ...BASE, files: "a.blend;b.blend", chunks_per_file: 3,
                          max_workers: 2, jobs_at_once: 5 });
  assert.deepEqual(tasks.map((t) => t.name), [
    "texture-a.part1of3", "texture-a.part2of3", "texture-a.part3of3",
    "texture-b.part1of3", "texture-b.part2of3", "texture-b.part3of3"]);
  const args = tasks.map((t) => t.commands[0].parameters.args);
  assert.deepEqual(args.map((a) => a[a.indexOf("--chunk") + 1]),
                   ["1/3", "2/3", "3/3", "1/3", "2/3", "3/3"]);
  assert.deepEqual(args.map((a) => a[a.indexOf("--output") + 1]), [
    "/farm/out/a.part1of3.blend", "/farm/out/a.part2of3.blend", "/farm/out/a.part3of3.blend",
    "/farm/out/b.part1of3.blend", "/farm/out/b.part2of3.blend", "/farm/out/b.part3of3.blend"]);
  // Two lanes: each task waits for the one two places before it.
  assert.deepEqual(tasks.map((t) => t.dependencies.map((d) => d.name)), [
    [], [], ["texture-a.part1of3"], ["texture-a.part2of3"], ["texture-a.part3of3"],
    ["texture-b.part1of3"]]);
});

test("the plan's jobs at once holds across the farm, or the job is refused", () => {
  // 3 files, 4 lanes: 3 tasks at once × 4 jobs each = 12 > 10.
  assert.throws(() => compile({ ...BASE, jobs_at_once: 4, max_workers: 4 }),
                /^jobs_at_once \(4\) × tasks at once \(3\) = 12 jobs in flight is more than the plan's 10 jobs at once: lower jobs_at_once or max_workers$/);
  assert.equal(compile({ ...BASE, jobs_at_once: 3, max_workers: 4 }).length, 3); // 9 ≤ 10
  assert.equal(compile({ ...BASE, jobs_at_once: 10, max_workers: 3,
                         plan_jobs_at_once: 30 }).length, 3); // Meshy Premium
  // Fewer tasks than lanes: only the tasks that can run together count.
  assert.equal(compile({ ...BASE, files: "a.blend", jobs_at_once: 10, max_workers: 8 }).length,
               1);
  // The offline provider shares no plan, and gets no --jobs-at-once.
  const offline = compile({ ...BASE, provider: "PROCEDURAL", jobs_at_once: 50,
                            online_mode: false });
  const line = commandLine(offline[0].commands[0]);
  assert.ok(!line.includes("--jobs-at-once") && !line.includes("--online-mode"));
});

test("a prompts file per .blend via {stem}, and no --collection then", () => {
  const tasks = compile({ ...BASE, prompt: "", prompts_file: "/farm/prompts/{stem}.csv" });
  const args = tasks[1].commands[0].parameters.args;
  assert.equal(args[args.indexOf("--prompts") + 1], "/farm/prompts/b.csv");
  assert.ok(!args.includes("--collection") && !args.includes("--prompt"));
});

test("bad settings are one clear line", () => {
  const cases = [
    [{ files: "" }, /no \.blend files/],
    [{ files: "a.blend;notes.txt" }, /"notes\.txt" is not a \.blend file/],
    [{ files: "a.blend;a.blend" }, /"a\.blend" is listed twice/],
    [{ output_dir: "/farm/shots/" }, /must not be the folder of the files/],
    [{ prompt: "" }, /give a prompt or a prompts file/],
    [{ provider: "NOPE" }, /provider must be one of/],
    [{ chunks_per_file: 0 }, /chunks_per_file must be 1 or more/],
  ];
  for (const [change, message] of cases) {
    assert.throws(() => compile({ ...BASE, ...change }), message);
  }
});

test("absolute paths in 'files' are kept; Windows ones too", () => {
  const tasks = compile({ ...BASE, files: "/elsewhere/x.blend;C:\\shots\\y.blend" });
  assert.equal(tasks[0].commands[0].parameters.blendfile, "/elsewhere/x.blend");
  assert.equal(tasks[1].commands[0].parameters.blendfile, "C:\\shots\\y.blend");
});
