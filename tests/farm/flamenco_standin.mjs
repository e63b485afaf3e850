// A small stand-in for the parts of Flamenco 3's job-compiler environment that
// farm/flamenco/text_to_texture.js uses: the `author` API (Task, Command, addCommand,
// addDependency), the job (settings, addTask), Flamenco's `path` helpers and `print`.
// The script runs in its own VM context, as a plain script, the way the Manager runs it.
//
// Run directly, it compiles a job from a JSON file of settings and prints its tasks:
//   node tests/farm/flamenco_standin.mjs settings.json

import fs from "node:fs";
import nodePath from "node:path";
import { fileURLToPath } from "node:url";
import vm from "node:vm";

const HERE = nodePath.dirname(fileURLToPath(import.meta.url));
export const SCRIPT = nodePath.resolve(HERE, "../../farm/flamenco/text_to_texture.js");

const author = {
  Task(name, type) {
    return {
      name, type, commands: [], dependencies: [],
      addCommand(cmd) { this.commands.push(cmd); },
      addDependency(task) { this.dependencies.push(task); },
    };
  },
  Command(name, parameters) {
    return { name, parameters };
  },
};

// Flamenco's path module works on forward-slash paths; `stem` drops the last extension.
const path = {
  join: (...parts) => nodePath.posix.join(...parts),
  basename: (p) => nodePath.posix.basename(p),
  dirname: (p) => nodePath.posix.dirname(p),
  stem: (p) => nodePath.posix.parse(p).name,
};

export function load(script = SCRIPT) {
  const context = vm.createContext({ author, path, print: () => {} });
  const code = fs.readFileSync(script, "utf8");
  return vm.runInContext(`${code}\n;({ JOB_TYPE, compileJob })`, context, { filename: script });
}

// The job's settings: the job type's defaults, then `given`, as the Manager fills them.
export function compile(given, { created = new Date(0) } = {}) {
  const { JOB_TYPE, compileJob } = load();
  const settings = {};
  for (const s of JOB_TYPE.settings) {
    if (s.default !== undefined) settings[s.key] = s.default;
  }
  Object.assign(settings, given);
  const job = { settings, created, tasks: [], addTask(t) { this.tasks.push(t); } };
  compileJob(job);
  return job.tasks;
}

// What a Worker would run for a blender-render command.
export function commandLine(cmd) {
  const p = cmd.parameters;
  return [p.exe, ...p.exeArgs.split(" ").filter(Boolean), ...p.argsBefore, p.blendfile,
          ...p.args];
}

if (process.argv[1] && fileURLToPath(import.meta.url) === nodePath.resolve(process.argv[1])) {
  const given = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
  const tasks = compile(given);
  const out = tasks.map((t) => ({
    name: t.name, type: t.type,
    after: t.dependencies.map((d) => d.name),
    command: t.commands.map(commandLine),
  }));
  process.stdout.write(JSON.stringify(out, null, 1) + "\n");
}
