// Small DOM helpers: elements, the definitions' Markdown as DOM nodes, notices, error boxes.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// A definition's Markdown as DOM nodes: **bold**, `code`, [text](https://…) links and line
// breaks, nothing more. Nothing goes through an HTML parser: every piece of text becomes a text
// node, so markup in a description shows as typed (the escaping is the DOM's own). A link is
// made only for an http(s) URL and opens in a new tab with rel="noopener noreferrer"; anything
// else, and a marker without its closing half, stays as written.
export function markdown(text) {
  const fragment = document.createDocumentFragment();
  String(text ?? '').split(/\r\n|\r|\n/).forEach((line, index) => {
    if (index > 0) fragment.append(el('br'));
    fragment.append(...markdownInline(line, { bold: true, links: true }));
  });
  return fragment;
}

export function markdownInline(text, allow) {
  const nodes = [];
  let plain = '';
  const flush = () => {
    if (plain) nodes.push(document.createTextNode(plain));
    plain = '';
  };
  let at = 0;
  while (at < text.length) {
    if (text[at] === '`') {
      const end = text.indexOf('`', at + 1);
      if (end > at + 1) {
        flush();
        nodes.push(el('code', { text: text.slice(at + 1, end) }));
        at = end + 1;
        continue;
      }
    } else if (allow.bold && text.startsWith('**', at)) {
      const end = text.indexOf('**', at + 2);
      if (end > at + 2) {
        flush();
        nodes.push(el('strong', {}, markdownInline(text.slice(at + 2, end), { ...allow, bold: false })));
        at = end + 2;
        continue;
      }
    } else if (allow.links && text[at] === '[') {
      const link = /^\[([^[\]]+)\]\((https?:\/\/[^\s()<>"]+)\)/i.exec(text.slice(at));
      const href = link && httpUrl(link[2]);
      if (href) {
        flush();
        nodes.push(el('a', { href, target: '_blank', rel: 'noopener noreferrer' }, markdownInline(link[1], { ...allow, links: false })));
        at += link[0].length;
        continue;
      }
    }
    plain += text[at];
    at += 1;
  }
  flush();
  return nodes;
}

// The URL as the browser reads it, when that is an http(s) one.
export function httpUrl(text) {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

export function notice(message, bad = false) {
  const box = document.getElementById('notice');
  box.textContent = message;
  box.className = bad ? 'notice bad' : 'notice';
  box.hidden = false;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => { box.hidden = true; }, 8000);
}

export function errorBox(error) {
  const parts = [];
  if (error.httpStatus) parts.push('HTTP ' + error.httpStatus);
  if (error.serviceCode) parts.push(error.serviceCode);
  return el('div', { class: 'error-box', role: 'alert', 'data-testid': 'error' },
    el('span', { class: 'code', text: error.code || 'error' }), ': ',
    el('span', { class: 'message', text: error.message || '' }),
    parts.length ? el('span', { class: 'status', text: ' (' + parts.join(', ') + ')' }) : null,
    error.field ? el('div', { class: 'field-name', text: 'field: ' + error.field }) : null,
    error.hint ? el('div', { class: 'hint', text: 'hint: ' + error.hint }) : null);
}

export function pretty(value) {
  return JSON.stringify(value, null, 2);
}
