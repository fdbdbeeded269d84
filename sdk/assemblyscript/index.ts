// Package entry for the AssemblyScript compiler: `import ... from "switchyard-sdk-as"`
// resolves to node_modules/switchyard-sdk-as/index.ts (asc 0.28 looks for
// <package>/index.ts). The SDK itself lives in assembly/index.ts.
export * from "./assembly/index";
