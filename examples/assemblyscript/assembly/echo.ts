// Module `echo` (docs/HANDLERS.md): the reference echo handler.
//
//   echo  send_success(<request event>, <request data>) with the data's raw
//         JSON unchanged (`null` when absent); returns 0.
//   fail  sends nothing and returns status 3.

// AssemblyScript exports only what the entry file exports: re-export the ABI pieces.
export { alloc, switchyard_abi_v1 } from "switchyard-sdk-as";

import { Request, sendSuccess, STATUS_BAD_REQUEST } from "switchyard-sdk-as";

export function echo(ptr: i32, len: i32): i32 {
  const req = Request.parse(ptr, len);
  if (req === null) return STATUS_BAD_REQUEST;
  sendSuccess(req.event, req.data);
  return 0;
}

export function fail(ptr: i32, len: i32): i32 {
  return 3;
}
