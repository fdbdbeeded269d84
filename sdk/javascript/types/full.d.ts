// world switchyard:handler/full@1.0.0
export type * as SwitchyardHandlerClaims100 from './interfaces/switchyard-handler-claims.js'; // import switchyard:handler/claims@1.0.0
export type * as SwitchyardHandlerHost100 from './interfaces/switchyard-handler-host.js'; // import switchyard:handler/host@1.0.0
export type * as SwitchyardHandlerSendToAll100 from './interfaces/switchyard-handler-send-to-all.js'; // import switchyard:handler/send-to-all@1.0.0
export type * as SwitchyardHandlerSendToClient100 from './interfaces/switchyard-handler-send-to-client.js'; // import switchyard:handler/send-to-client@1.0.0
export type * as SwitchyardHandlerSendToUser100 from './interfaces/switchyard-handler-send-to-user.js'; // import switchyard:handler/send-to-user@1.0.0
export type * as SwitchyardHandlerTags100 from './interfaces/switchyard-handler-tags.js'; // import switchyard:handler/tags@1.0.0
export type * as SwitchyardHandlerTypes100 from './interfaces/switchyard-handler-types.js'; // import switchyard:handler/types@1.0.0
export * as handler from './interfaces/switchyard-handler-handler.js'; // export switchyard:handler/handler@1.0.0
