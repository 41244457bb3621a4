// Drive the local server with the official Node SDK (openai's OpenAIRealtimeWS), unmodified.
// Usage: node realtime_conversation.mjs <base_url https://127.0.0.1:PORT/v1> <text|audio|error> [pcm16_24k_file]
// Prints one JSON object per line: every server event (type plus a few fields), then {"done": true}.
// TLS trust comes from NODE_EXTRA_CA_CERTS; verification is never disabled here.
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';

const [baseURL, mode, pcmPath] = process.argv.slice(2);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const fail = (msg) => { out({ fatal: String(msg) }); process.exit(2); };
setTimeout(() => fail('timeout'), 60000).unref();

const client = new OpenAI({ apiKey: 'local', baseURL });
const rt = await OpenAIRealtimeWS.create(client, { model: 'gpt-realtime' });
rt.socket.on('error', (err) => fail(`socket: ${err.code ?? ''} ${err.message}`));

const finish = () => { out({ done: true }); rt.close(); process.exit(0); };
rt.on('error', (err) => {
  out({ type: 'error', code: err.error?.code ?? null, message: err.message });
  if (mode === 'error') finish();
});
const seen = new Set();
rt.on('event', (ev) => {
  if (ev.type === 'error') return; // reported by the 'error' handler above
  const rec = { type: ev.type };
  if (ev.delta !== undefined) rec.delta_len = ev.delta.length;
  if (ev.type === 'response.output_text.delta' || ev.type === 'response.output_audio_transcript.delta') rec.delta = ev.delta;
  if (ev.transcript !== undefined) rec.transcript = ev.transcript;
  if (ev.type === 'response.done') rec.status = ev.response?.status;
  out(rec);
  seen.add(ev.type);
  const needed = mode === 'audio'
    ? ['response.done', 'conversation.item.input_audio_transcription.completed'] : ['response.done'];
  if (needed.every((t) => seen.has(t))) finish();
});

await new Promise((resolve, reject) => { rt.socket.once('open', resolve); rt.socket.once('error', reject); })
  .catch((err) => fail(`socket: ${err.code ?? ''} ${err.message}`));

if (mode === 'text') {
  rt.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'], audio: { input: { turn_detection: null } } } });
  rt.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Say hello.' }] } });
  rt.send({ type: 'response.create' });
} else if (mode === 'audio') {
  rt.send({
    type: 'session.update',
    session: {
      type: 'realtime',
      output_modalities: ['audio'],
      audio: {
        input: { format: { type: 'audio/pcm', rate: 24000 }, turn_detection: { type: 'server_vad' }, transcription: { model: 'whisper-1' } },
        output: { format: { type: 'audio/pcm', rate: 24000 } },
      },
    },
  });
  const pcm = readFileSync(pcmPath);
  const chunk = 4800; // 100 ms of PCM16 24 kHz
  for (let i = 0; i < pcm.length; i += chunk) {
    rt.send({ type: 'input_audio_buffer.append', audio: pcm.subarray(i, i + chunk).toString('base64') });
  }
} else if (mode === 'error') {
  rt.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: null } } } });
  rt.send({ type: 'input_audio_buffer.commit' });
} else {
  fail(`unknown mode ${mode}`);
}
