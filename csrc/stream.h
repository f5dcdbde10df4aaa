/* ipckit._core.Decoder and Stream: the hot paths of the stream transports. */
#ifndef IPCKIT_STREAM_H
#define IPCKIT_STREAM_H

#include "endpoint.h"

extern PyTypeObject ik_DecoderType;
extern PyTypeObject ik_StreamType;

int ik_stream_module_init(void);

#endif
