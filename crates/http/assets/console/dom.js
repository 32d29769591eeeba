// Small DOM helpers. Text always goes in as text (never as markup), so an email address
// or an error message cannot inject anything.

/**
 * Makes an element: h("button", {type: "button", onclick: f}, "Save").
 * Properties starting with "on" become event listeners; "class", "for", "aria-*",
 * "data-*" and other attributes are set as attributes; `false`, `null` and `undefined`
 * leave an attribute out. Children are nodes, strings, or arrays of them; null and false
 * are skipped.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "value") {
      el.value = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) {
      append(el, child);
    } else if (child instanceof Node) {
      el.appendChild(child);
    } else {
      el.appendChild(document.createTextNode(String(child)));
    }
  }
}

/** Replaces everything inside `el` with `children`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

let fieldIds = 0;

/**
 * A labelled input (or `tag`: "textarea") with room for its own error and an optional
 * hint, both tied to the input with aria-describedby. Returns {row, input, setError, hint}.
 */
export function field(label, attrs = {}, hint = null, tag = "input") {
  const id = `f${++fieldIds}`;
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  const input = h(tag, { id, ...attrs });
  const error = h("p", { class: "field-error", id: errorId, hidden: true });
  const described = [hintId, errorId].filter(Boolean).join(" ");
  input.setAttribute("aria-describedby", described);
  const hintEl = hint ? h("p", { class: "hint", id: hintId }, hint) : null;
  const row = h("div", { class: "field" }, h("label", { for: id }, label), input, hintEl, error);
  const setError = (message) => {
    if (message) {
      error.textContent = message;
      error.hidden = false;
      input.setAttribute("aria-invalid", "true");
    } else {
      error.textContent = "";
      error.hidden = true;
      input.removeAttribute("aria-invalid");
    }
  };
  input.addEventListener("input", () => setError(null));
  return { row, input, setError, hint: hintEl };
}

/** A message box: role "alert" for errors (read out at once), "status" for the rest. */
export function messageBox() {
  const box = h("div", { class: "message", hidden: true });
  return {
    el: box,
    show(text, kind = "error") {
      box.className = `message ${kind}`;
      box.setAttribute("role", kind === "error" ? "alert" : "status");
      box.textContent = text;
      box.hidden = false;
    },
    clear() {
      box.hidden = true;
      box.textContent = "";
      box.removeAttribute("role");
    },
  };
}

const dateFormat = new Intl.DateTimeFormat(undefined, {
  dateStyle: "medium",
  timeStyle: "short",
});

/** A date and time as people read it here. */
export function formatDate(date) {
  return dateFormat.format(date);
}

/** A <time> element for an RFC 3339 timestamp, or a dash for none. */
export function time(value) {
  if (!value) return h("span", { class: "none" }, "—");
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return h("span", {}, value);
  return h("time", { datetime: value, title: value }, dateFormat.format(date));
}
