// Second entry file of the instance = "reuse" builds (build.sh, build/reuse/):
// compiled together with echo.ts or chat.ts under --runtime minimal, it adds the
// SDK's `switchyard_reset` export, which the host runs between two events of a
// kept instance. The default stub builds leave it out (it does not compile
// with --runtime stub, on purpose: see the SDK's README).
export { switchyard_reset } from "switchyard-sdk-as";
