// Talking to the Ponder API: errors in OpenAI's shape ({"error": {message, type, param, code}}).

/** {status, message, code} from a failed response (JSON error body or plain text). */
export async function errorOf(response) {
  const text = await response.text().catch(() => "");
  let error;
  try {
    error = JSON.parse(text).error || { message: text };
  } catch {
    error = { message: text };
  }
  return { status: response.status, message: error.message || response.statusText || "request failed", code: error.code || error.type };
}

/** "401 · invalid_api_key · Incorrect API key provided" */
export const describeError = (e) => [e.status, e.code, e.message].filter(Boolean).join(" · ");
