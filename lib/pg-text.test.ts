import { storable, storableText } from './pg-text';

describe('storable text', () => {
  it('drops NUL characters and unpaired surrogates, and keeps everything else', () => {
    expect(storableText('a\u0000b\u0000')).toBe('ab');
    expect(storableText('x\ud800y\udc00z')).toBe('xyz');
    expect(storableText('emoji \ud83d\ude00 stays, é too')).toBe('emoji \ud83d\ude00 stays, é too');
  });

  it('cleans every string of a JSON value, keys included', () => {
    expect(storable({ 'k\u0000': ['a\u0000', 1, null, true, { deep: 'b\ud800' }], n: 2 })).toEqual({
      k: ['a', 1, null, true, { deep: 'b' }],
      n: 2,
    });
    expect(storable(undefined)).toBeUndefined();
  });
});
