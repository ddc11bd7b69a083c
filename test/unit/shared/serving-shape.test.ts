import { describe, expect, it } from 'vitest';
import { FleetError } from '../../../shared/errors/index.js';
import {
  checkServingShapes,
  parseShapeFlags,
  resolveInputShape,
  unresolvedDimensions,
} from '../../../shared/serving-shape.js';

const classifier = [{ name: 'x', shape: ['batch', 3, 'h', 'w'] }];
const twoInputs = [
  { name: 'image', shape: ['n', 3, 'h', 'w'] },
  { name: 'scale', shape: ['n', 2] },
];

function errorOf(fn: () => unknown): FleetError {
  try {
    fn();
  } catch (error) {
    if (error instanceof FleetError) return error;
    throw error;
  }
  throw new Error('expected a FleetError');
}

describe('serving shapes', () => {
  it('parses an unnamed shape and per-input shapes', () => {
    expect(parseShapeFlags(['1,3,48,192'])).toEqual({ '': [1, 3, 48, 192] });
    expect(parseShapeFlags(['image=1,3,640,640', 'scale=1,2'])).toEqual({
      image: [1, 3, 640, 640],
      scale: [1, 2],
    });
    expect(errorOf(() => parseShapeFlags(['1,0,48'])).code).toBe('INPUT_INVALID');
    expect(errorOf(() => parseShapeFlags(['1,a'])).code).toBe('INPUT_INVALID');
    expect(errorOf(() => parseShapeFlags(['x=1', 'x=2'])).message).toMatch(/twice/);
  });

  it('checks rank and fixed dims against the model, naming the expected shape', () => {
    expect(checkServingShapes(classifier, { '': [1, 3, 48, 192] })).toEqual({ x: [1, 3, 48, 192] });
    const wrongChannels = errorOf(() => checkServingShapes(classifier, { x: [1, 1, 48, 192] }));
    expect(wrongChannels.code).toBe('INPUT_INVALID');
    expect(wrongChannels.message).toContain('expects [batch,3,h,w]');
    expect(errorOf(() => checkServingShapes(classifier, { x: [1, 3, 48] })).message).toContain(
      '[batch,3,h,w]',
    );
    expect(errorOf(() => checkServingShapes(twoInputs, { '': [1, 3, 8, 8] })).message).toMatch(
      /2 inputs: name each shape/,
    );
    expect(errorOf(() => checkServingShapes(twoInputs, { nope: [1] })).message).toMatch(/no input nope/);
  });

  it('lists the symbolic dims no serving shape resolves, and never hides the fallback', () => {
    expect(unresolvedDimensions(twoInputs, { image: [1, 3, 8, 8] })).toEqual(['scale:n']);
    expect(unresolvedDimensions(classifier, {})).toEqual(['x:batch', 'x:h', 'x:w']);
    expect(resolveInputShape(classifier[0], { x: [2, 3, 4, 5] }, 1)).toEqual({
      dims: [2, 3, 4, 5],
      unresolved: [],
    });
    expect(resolveInputShape(classifier[0], undefined, 1)).toEqual({
      dims: [1, 3, 1, 1],
      unresolved: ['x:batch', 'x:h', 'x:w'],
    });
  });
});
