// The harness's JSON API under /api/.

export async function api(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers['content-type'] = 'application/json';
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch('/api/' + path, options);
  } catch (problem) {
    return { ok: false, data: { error: { code: 'host', message: 'the designer server did not answer: ' + problem.message } } };
  }
  let data;
  try {
    data = await response.json();
  } catch (problem) {
    data = { error: { code: 'host', message: 'the designer server answered ' + response.status + ' without JSON' } };
  }
  return { ok: response.ok, status: response.status, data };
}
