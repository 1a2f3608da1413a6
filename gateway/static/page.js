// The gateway's chat page: plain JS over the gateway's own OpenAI API, no build step.
// Stop aborts the request; the gateway sees the client leave and cancels the job inside the engine.
"use strict";

const $ = (id) => document.getElementById(id);
let history = [];
let running = null; // {controller, jobId}

function headers() {
  const key = $("api-key").value.trim();
  return key ? { "Content-Type": "application/json", Authorization: `Bearer ${key}` }
             : { "Content-Type": "application/json" };
}

async function loadModels() {
  const reply = await fetch("/v1/models", { headers: headers() });
  if (!reply.ok) { $("status").textContent = `models: ${reply.status}`; return; }
  const models = (await reply.json()).data.filter((m) => m.inferq.can_generate);
  const chosen = $("model").value; // read after the fetch: a choice made meanwhile is kept too
  $("model").replaceChildren(...models.map((m) => new Option(`${m.id} (${m.inferq.engine})`, m.id)));
  if (models.some((m) => m.id === chosen)) $("model").value = chosen;
}

function addTurn(role, text) {
  const turn = document.createElement("div");
  turn.className = `turn ${role}`;
  turn.textContent = text;
  $("history").append(turn);
  return turn;
}

function requestBody(messages) {
  const system = $("system").value.trim();
  return {
    model: $("model").value,
    messages: system ? [{ role: "system", content: system }, ...messages] : messages,
    temperature: Number($("temperature").value),
    top_p: Number($("top-p").value),
    max_tokens: Number($("max-tokens").value),
    stream: true,
    stream_options: { include_usage: true },
  };
}

// Each SSE frame's data; a frame split across network reads waits for its end.
async function* frames(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffered.indexOf("\n\n")) >= 0) {
      const frame = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      const data = frame.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
      if (data) yield data;
    }
  }
}

async function ask(question) {
  const messages = [...history, { role: "user", content: question }];
  addTurn("user", question);
  const answer = addTurn("assistant", "");
  answer.dataset.deltas = "0";
  const controller = new AbortController();
  running = { controller, jobId: null };
  setRunning(true);
  let text = "";
  try {
    const reply = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers(), body: JSON.stringify(requestBody(messages)), signal: controller.signal,
    });
    if (!reply.ok) throw new Error((await reply.json()).error.message);
    running.jobId = reply.headers.get("X-Inferq-Job-Id");
    for await (const data of frames(reply.body)) {
      if (data === "[DONE]") break;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      const delta = chunk.choices[0]?.delta?.content;
      if (delta) {
        text += delta;
        answer.textContent = text;
        answer.dataset.deltas = String(Number(answer.dataset.deltas) + 1);
      }
    }
    $("status").textContent = "done";
  } catch (error) {
    if (error.name === "AbortError") {
      answer.classList.add("stopped");
      $("status").textContent = "stopped";
    } else {
      $("status").textContent = `error: ${error.message}`;
    }
  }
  history = [...messages, { role: "assistant", content: text }];
  const jobId = running.jobId;
  running = null;
  setRunning(false);
  if (jobId) await showRecord(jobId);
}

async function showRecord(jobId) {
  // A stopped job's record lands once its worker has aborted it: wait for it a little.
  const reply = await fetch(`/inferq/jobs/${jobId}?wait_s=10`, { headers: headers() });
  const record = await reply.json();
  if (reply.status !== 200) { $("record").textContent = JSON.stringify(record, null, 2); return; }
  const t = record.timings;
  const ms = (from, to) => (from && to ? `${Math.round((to - from) * 1000)} ms` : "-");
  $("record").textContent = [
    `job       ${record.job_id}`,
    `status    ${record.status}`,
    `finish    ${(record.responses || []).map((r) => r.finish_reason).join(", ") || "-"}`,
    `tokens    ${record.usage ? `${record.usage.prompt_tokens} prompt + ${record.usage.completion_tokens} completion` : "-"}`,
    `worker    ${record.worker || "-"} (${record.engine || "-"}, attempt ${record.attempt})`,
    `queued    ${ms(t.queued_at, t.started_at)}`,
    `1st token ${ms(t.started_at, t.first_token_at)}`,
    `total     ${ms(t.queued_at, t.finished_at)}`,
  ].join("\n");
  $("record").dataset.status = record.status;
}

function setRunning(on) {
  $("send").disabled = on;
  $("stop").disabled = !on;
}

$("ask").addEventListener("submit", (event) => {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question || running) return;
  $("question").value = "";
  $("status").textContent = "streaming…";
  ask(question);
});
$("stop").addEventListener("click", () => running?.controller.abort());
$("clear").addEventListener("click", () => {
  history = [];
  $("history").replaceChildren();
  $("status").textContent = "history cleared";
});
$("api-key").addEventListener("change", loadModels);
loadModels();
