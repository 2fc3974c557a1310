// What a failed call says to a person: read from the grpc-web status and
// its typed details (google.rpc.ErrorInfo's reason, BadRequest's fields),
// never by parsing the message text.

import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { words } from "./i18n.js";

export interface Problem {
  /** ErrorInfo's reason (e.g. "TOKEN_INVALID"), or "" when there is none. */
  reason: string;
  /** What the page says about the reason, in the page's language. */
  summary: string;
  /** The server's own message, for people (in English). */
  message: string;
  /** BadRequest's fields and what is wrong with each. */
  fields: { field: string; description: string }[];
}

export function describe(error: unknown): Problem {
  const connectError = ConnectError.from(error);
  const info = connectError.findDetails(ErrorInfoSchema)[0];
  let reason = info?.reason ?? "";
  if (reason === "" && connectError.code === Code.Unavailable) {
    reason = "UNREACHABLE";
  }
  const fields = connectError
    .findDetails(BadRequestSchema)
    .flatMap((badRequest) => badRequest.fieldViolations)
    .map((violation) => ({ field: violation.field, description: violation.description }));
  const summary = words().reasons[reason] ?? "";
  return { reason, summary, message: connectError.rawMessage, fields };
}

/** Fills `into` with the problem: the summary, the message, the fields. */
export function show(problem: Problem, into: HTMLElement): void {
  into.replaceChildren();
  const title = document.createElement("strong");
  title.textContent = problem.summary || words().failed;
  into.append(title);
  if (problem.message !== "") {
    const message = document.createElement("span");
    message.className = "message";
    message.textContent = problem.message;
    into.append(message);
  }
  if (problem.reason !== "") {
    into.dataset.reason = problem.reason;
  } else {
    delete into.dataset.reason;
  }
  if (problem.fields.length > 0) {
    const list = document.createElement("ul");
    for (const violation of problem.fields) {
      const item = document.createElement("li");
      item.textContent = `${violation.field}: ${violation.description}`;
      list.append(item);
    }
    into.append(words().fields, list);
  }
}
