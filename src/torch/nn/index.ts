export { Module } from './module.ts';
export * from './layers.ts';
export * as init from './init.ts';
export { foldForInference, toChannelsLast, type ConvBn } from './fold.ts';
export { keepFloat32 } from './float32.ts';
