// SPDX-License-Identifier: GPL-3.0-or-later
//
// Flamenco 3 job type: texture a folder of .blend files with the Text to Texture extension.
//
// Install: copy this file into the Manager's `scripts/` folder (beside flamenco-manager) and
// restart the Manager. Each Worker's Blender must have the Text to Texture extension installed
// and enabled for the user the Worker runs as, with the provider's API key in the add-on
// preferences or the environment (e.g. MESHY_API_KEY).
//
// One task per file, or `chunks_per_file` tasks per file, each texturing its slice of the
// file's objects (`--chunk K/N`) and saving its own output file. Every task runs
//   blender -b [--online-mode] FILE --command text_to_texture --provider … --output …
//
// The provider plan's limit of jobs at once (Meshy Pro: 10 per account) holds across the farm:
// each task keeps at most `jobs_at_once` jobs in flight (`--jobs-at-once`, which sets
// <PROVIDER>_JOBS_AT_ONCE for that Blender), and the tasks are chained into `max_workers`
// lanes (each task waits for the one `max_workers` places before it), so at most
// `max_workers` tasks run at once however many Workers the farm has. The job is refused
// unless jobs_at_once × max_workers ≤ plan_jobs_at_once. Leave room in the plan for the
// artists' own Blenders.
//
// A task exits non-zero when any of its texture jobs failed (its output file is saved anyway,
// with one line per failure in the task log), so the failure shows in Flamenco. A retry of
// that task sends all its objects again and a paid provider charges again: keep chunks
// small, or lower the Manager's task retries for farms that texture with a paid provider.
// Texture maps are written beside each source file (//textures/), so Workers need write
// access to the folder. A task runs only once the task before it in its lane completed, so a
// task that failed for good holds up the rest of its lane until it is requeued.

const PROVIDERS = ["MESHY", "TRIVERSE", "DRESSX", "SCENARIO", "PROCEDURAL"];
const OFFLINE = new Set(["PROCEDURAL"]);

const JOB_TYPE = {
    label: "Text to Texture",
    description: "Texture the meshes of many .blend files from text prompts",
    settings: [
        { key: "blender_cmd", type: "string", default: "{blender}", visible: false,
          description: "Blender on the Worker (the Manager's {blender} variable)" },
        { key: "folder", type: "string", subtype: "dir_path", required: true,
          description: "Folder of the .blend files to texture (as the Workers see it)" },
        { key: "files", type: "string", required: true,
          eval: "';'.join(sorted(p.name for p in Path(bpy.path.abspath(settings.folder)).glob('*.blend')))",
          evalInfo: { showLinkButton: true, description: "Every .blend file in the folder" },
          description: "The .blend files to texture, separated by ';': names in the folder, " +
                       "or absolute paths" },
        { key: "provider", type: "string", choices: PROVIDERS, default: "MESHY", required: true,
          description: "Who makes the textures" },
        { key: "prompt", type: "string", default: "",
          description: "What the surfaces should look like; may name each object with " +
                       "{name}, {collection}, {material}. Needed unless a prompts file or the " +
                       "objects' t2t_prompt properties give every object one" },
        { key: "negative_prompt", type: "string", default: "",
          description: "What the textures should not have" },
        { key: "prompts_file", type: "string", subtype: "file_path", default: "",
          description: "A prompt per object (JSON or CSV, object name to prompt); {stem} is " +
                       "replaced by each .blend file's name without .blend, e.g. " +
                       "prompts/{stem}.csv. Without a prompts file every mesh is textured" },
        { key: "resolution", type: "string", choices: ["1024", "2048", "4096"], default: "1024",
          description: "Texture size in pixels" },
        { key: "online_mode", type: "bool", default: true,
          description: "Start Blender with --online-mode: every provider but the offline " +
                       "one needs network access" },
        { key: "output_dir", type: "string", subtype: "dir_path", required: true,
          description: "Where the textured .blend files go: FILE.blend, or " +
                       "FILE.partKofN.blend with chunks. Must not be the folder of the files" },
        { key: "chunks_per_file", type: "int32", default: 1,
          description: "Tasks per file, each texturing 1/N of its objects and saving its own " +
                       "output file (1: one task per file)" },
        { key: "jobs_at_once", type: "int32", default: 2,
          description: "Jobs each task keeps in flight at the provider (--jobs-at-once)" },
        { key: "max_workers", type: "int32", default: 4,
          description: "Tasks of this job running at once: the tasks are chained into this " +
                       "many lanes, so no more run together however many Workers there are" },
        { key: "plan_jobs_at_once", type: "int32", default: 10,
          description: "Jobs at once your provider plan allows per account (Meshy: Pro 10, " +
                       "Premium 30, Studio 60); jobs_at_once × max_workers must not exceed it" },
        { key: "timeout", type: "int32", default: 0,
          description: "Seconds after which a task cancels its unfinished jobs (0: no limit)" },
    ],
};

function compileJob(job) {
    const settings = job.settings;
    const plan = checkSettings(settings);
    const files = blendFiles(settings);
    const chunks = settings.chunks_per_file || 1;

    const tasks = [];
    for (const file of files) {
        for (let k = 1; k <= chunks; k++) {
            tasks.push(textureTask(settings, file, k, chunks));
        }
    }
    checkPlanLimit(settings, plan, tasks.length);
    const lanes = Math.max(1, settings.max_workers);
    tasks.forEach((task, i) => {
        if (i >= lanes) {
            task.addDependency(tasks[i - lanes]);
        }
        job.addTask(task);
    });
}

function checkSettings(settings) {
    if (PROVIDERS.indexOf(settings.provider) < 0) {
        throw `provider must be one of ${PROVIDERS.join(", ")}, not "${settings.provider}"`;
    }
    if (!settings.prompt && !settings.prompts_file) {
        throw "give a prompt or a prompts file";
    }
    for (const key of ["chunks_per_file", "jobs_at_once", "max_workers"]) {
        if (!(settings[key] >= 1)) {
            throw `${key} must be 1 or more`;
        }
    }
    if (!settings.output_dir) {
        throw "output_dir is required";
    }
    if (sameDir(settings.output_dir, settings.folder)) {
        throw "output_dir must not be the folder of the files: the textured files would " +
              "replace them";
    }
    return OFFLINE.has(settings.provider) ? null : settings.plan_jobs_at_once;
}

function checkPlanLimit(settings, plan, taskCount) {
    if (plan === null) {
        return; // made on the Workers' own CPUs: no plan to share
    }
    const together = Math.min(settings.max_workers, taskCount);
    const inFlight = settings.jobs_at_once * together;
    if (!(plan >= 1) || inFlight > plan) {
        throw `jobs_at_once (${settings.jobs_at_once}) × tasks at once (${together}) = ` +
              `${inFlight} jobs in flight is more than the plan's ${plan} jobs at once: ` +
              "lower jobs_at_once or max_workers";
    }
}

function blendFiles(settings) {
    const names = String(settings.files || "").split(/[;\n]/)
        .map((s) => s.trim()).filter((s) => s.length > 0);
    if (names.length === 0) {
        throw "no .blend files: list them in 'files' (separated by ';')";
    }
    const seen = new Set();
    const files = [];
    for (const name of names) {
        if (!/\.blend$/i.test(name)) {
            throw `"${name}" is not a .blend file`;
        }
        const file = isAbsolute(name) ? name : path.join(settings.folder, name);
        if (seen.has(file)) {
            throw `"${name}" is listed twice`;
        }
        seen.add(file);
        files.push(file);
    }
    return files;
}

function textureTask(settings, file, k, chunks) {
    const stem = path.stem(file);
    const part = chunks > 1 ? `.part${k}of${chunks}` : "";
    const output = path.join(settings.output_dir, `${stem}${part}.blend`);
    const args = ["--command", "text_to_texture", "--provider", settings.provider,
                  "--resolution", String(settings.resolution)];
    if (settings.prompt) {
        args.push("--prompt", settings.prompt);
    }
    if (settings.negative_prompt) {
        args.push("--negative-prompt", settings.negative_prompt);
    }
    if (settings.prompts_file) {
        args.push("--prompts", settings.prompts_file.split("{stem}").join(stem));
    } else {
        args.push("--collection", "Scene Collection"); // every mesh of the scene
    }
    if (chunks > 1) {
        args.push("--chunk", `${k}/${chunks}`);
    }
    if (!OFFLINE.has(settings.provider)) {
        args.push("--jobs-at-once", String(settings.jobs_at_once));
    }
    if (settings.timeout > 0) {
        args.push("--timeout", String(settings.timeout));
    }
    args.push("--output", output);

    const task = author.Task(`texture-${stem}${part}`, "blender");
    task.addCommand(author.Command("blender-render", {
        exe: settings.blender_cmd || "{blender}",
        // Not {blenderArgs}: a --factory-startup there would leave the extension disabled.
        exeArgs: "-b",
        argsBefore: settings.online_mode ? ["--online-mode"] : [],
        blendfile: file,
        args: args,
    }));
    return task;
}

function isAbsolute(p) {
    return p.startsWith("/") || p.startsWith("\\\\") || /^[A-Za-z]:[\\/]/.test(p);
}

function sameDir(a, b) {
    const norm = (p) => String(p || "").replace(/\\/g, "/").replace(/\/+$/, "");
    return norm(a) !== "" && norm(a) === norm(b);
}
