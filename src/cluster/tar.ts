/**
 * A POSIX ustar archive in memory, for `cluster bundle --tar`: one folder with a few small
 * files, owned by root (uid/gid 0) so that `tar -x` as root on the VM gives root-owned files,
 * with exact modes. Pure: the same entries give the same bytes. (~50 lines instead of a
 * dependency or the workstation's own tar, whose options differ between GNU and BSD.)
 */

export interface TarEntry {
  /** Path inside the archive; a directory ends with `/`. At most 100 bytes. */
  readonly name: string;
  readonly mode: number;
  readonly content?: string | Uint8Array;
}

const BLOCK = 512;

function field(buf: Buffer, offset: number, length: number, value: string): void {
  const b = Buffer.from(value, 'utf8');
  if (b.length > length) throw new Error(`tar: "${value}" does not fit ${length} bytes`);
  b.copy(buf, offset);
}

/** An octal number, zero-padded to `length - 1` digits and NUL-terminated. */
function octal(buf: Buffer, offset: number, length: number, n: number): void {
  field(buf, offset, length, n.toString(8).padStart(length - 1, '0') + '\0');
}

function header(name: string, mode: number, size: number, dir: boolean, mtime: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  field(h, 0, 100, name);
  octal(h, 100, 8, mode & 0o7777);
  octal(h, 108, 8, 0); // uid
  octal(h, 116, 8, 0); // gid
  octal(h, 124, 12, size);
  octal(h, 136, 12, Math.floor(mtime / 1000));
  h.fill(0x20, 148, 156); // checksum field counts as spaces
  h.write(dir ? '5' : '0', 156, 'ascii');
  field(h, 257, 6, 'ustar\0');
  field(h, 263, 2, '00');
  field(h, 265, 32, 'root');
  field(h, 297, 32, 'root');
  let sum = 0;
  for (const byte of h) sum += byte;
  field(h, 148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return h;
}

/** The archive: each entry's header and content, padded to 512 bytes, then two empty blocks. */
export function tarArchive(entries: readonly TarEntry[], mtime: number): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const dir = e.name.endsWith('/');
    const data = dir ? Buffer.alloc(0) : Buffer.from(e.content ?? '');
    parts.push(header(e.name, e.mode, data.length, dir, mtime), data);
    const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}
